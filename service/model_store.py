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
import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import bentoml
from bentoml.exceptions import NotFound

REPO = Path(__file__).resolve().parents[1]
STORE_NAMES = {"sentiment": "senpos-sentiment", "pos": "senpos-pos"}
REPO_DIRS = {"sentiment": REPO / "models" / "sentiment", "pos": REPO / "models" / "pos"}
# model -> metric name -> where its model card's figure lives: (file, keys into its JSON)
HEADLINE_METRICS = {
    "sentiment": {"report_accuracy": ("evaluation.json", "report", "accuracy"),
                  "report_log_loss": ("evaluation.json", "report", "log_loss"),
                  "report_ece": ("evaluation.json", "report", "ece")},
    "pos": {"token_accuracy": ("evaluation.json", "token_accuracy_gold_segmentation"),
            "segmentation_f1": ("evaluation.json", "end_to_end", "segmentation_f1"),
            "seg_pos_f1": ("evaluation.json", "end_to_end", "seg_pos_f1")},
}


def stored_model(model: str) -> bentoml.Model | None:
    """The store's latest `senpos-<model>`, or None when the store has none."""
    try:
        return bentoml.models.get(f"{STORE_NAMES[model]}:latest")
    except NotFound:
        return None


def declared_models(store_tags: dict[str, str]) -> tuple[bentoml.models.BentoModel | None, ...]:
    """(sentiment, pos) as `bentoml.models.BentoModel` class attributes of a service, for the models it serves
    from the store (None for one served from a directory): `bentoml build` records them in the Bento."""
    return tuple(bentoml.models.BentoModel(store_tags[m]) if m in store_tags else None for m in STORE_NAMES)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def directory_digest(path: Path) -> str:
    """One sha256 over every file's name and contents: the model's version in the store."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def headline_metrics(model: str, path: Path) -> dict[str, float]:
    """The model card's headline figures, read from the evaluation files in the model directory (those present)."""
    out: dict[str, float] = {}
    for name, (file, *keys) in HEADLINE_METRICS[model].items():
        try:
            value: Any = json.loads((path / file).read_text(encoding="utf-8"))
            for key in keys:
                value = value[key]
            out[name] = round(float(value), 4)
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return out


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
    tag = f"{STORE_NAMES[model]}:{directory_digest(path)[:20]}"
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
