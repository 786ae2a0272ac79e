"""The shipped models in BentoML's model store, as `senpos-sentiment` and `senpos-pos`.

`make models-import` (`python -m service.model_store`) imports models/sentiment and models/pos, labelled with their
headline metrics, the sha256 of model.onnx and the vocabulary digest the model was exported with. A model's
version is the digest of its directory, so importing the same files again changes nothing. `bentoml build`
copies the store's models into the Bento (bentofile `models:`), and `bentoml models list` shows what ships.

Which directory the service loads, per model (service/settings.py asks `stored_model`): the SENPOS_*_MODEL
directory when it is set, else the store's latest model when the store has one (a built Bento carries its own
store), else the repository's models/ directory, so a fresh clone serves with an empty store.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import bentoml
from bentoml.exceptions import NotFound

from senpos.identity import NAMES, file_sha256, headline_metrics, model_version

REPO = Path(__file__).resolve().parents[1]
REPO_DIRS = {"sentiment": REPO / "models" / "sentiment", "pos": REPO / "models" / "pos"}


def stored_model(model: str) -> bentoml.Model | None:
    """The store's latest `senpos-<model>`, or None when the store has none."""
    try:
        return bentoml.models.get(f"{NAMES[model]}:latest")
    except NotFound:
        return None


def declared_models(store_tags: dict[str, str]) -> tuple[bentoml.models.BentoModel | None, ...]:
    """(sentiment, pos) as `bentoml.models.BentoModel` class attributes of a service, for the models it serves
    from the store (None for one served from a directory): `bentoml build` records them in the Bento."""
    return tuple(bentoml.models.BentoModel(store_tags[m]) if m in store_tags else None for m in NAMES)


def vocabulary_digest(model: str, path: Path) -> str:
    """The vocabulary digest model.onnx was exported with, after loading the model the way the service does
    (so a broken or mismatched directory is refused here, with the service's own message)."""
    from senpos.pos import PosTagger
    from senpos.sentiment import SentimentPredictor

    predictor = (SentimentPredictor if model == "sentiment" else PosTagger)(path, threads=1, provider="cpu")
    return predictor.session.get_modelmeta().custom_metadata_map["vocab_sha256"]


def import_model(model: str, path: Path) -> tuple[str, bool]:
    """Put the model directory into the store; returns (tag, whether a new version was created)."""
    path = path.resolve()
    tag = f"{NAMES[model]}:{model_version(path)}"
    try:
        return str(bentoml.models.get(tag).tag), False
    except NotFound:
        pass
    metrics, onnx_sha256 = headline_metrics(model, path), file_sha256(path / "model.onnx")
    labels = {"task": model, "sha256": onnx_sha256, "vocab_sha256": vocabulary_digest(model, path),
              **{name: str(value) for name, value in metrics.items()}}
    files = {f.relative_to(path).as_posix(): file_sha256(f) for f in sorted(path.rglob("*")) if f.is_file()}
    source = path.relative_to(REPO).as_posix() if path.is_relative_to(REPO) else str(path)
    metadata = {"metrics": metrics, "source": source, "model_card": "MODEL_CARD.md", "files": files}
    with bentoml.models.create(tag, labels=labels, metadata=metadata) as stored:
        shutil.copytree(path, stored.path, dirs_exist_ok=True)
    return tag, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Import the senpos models into BentoML's model store "
                                                 "($BENTOML_HOME/models) as senpos-sentiment and senpos-pos.")
    parser.add_argument("--sentiment", type=Path, default=REPO_DIRS["sentiment"], help="sentiment model directory")
    parser.add_argument("--pos", type=Path, default=REPO_DIRS["pos"], help="POS model directory")
    args = parser.parse_args(argv)
    for model, path in (("sentiment", args.sentiment), ("pos", args.pos)):
        tag, created = import_model(model, path)
        print(f"{tag}: {'imported from' if created else 'already in the store, from'} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
