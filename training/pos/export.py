"""Step 3 of 3: checkpoint -> ONNX model directory (vocabularies, tags, jieba dictionary, config, and the model as
features.onnx + model.onnx + model.int8.onnx: training/pos/optimize.py). A segmentation corrector already in the
directory stays.

Export fails unless onnxruntime reproduces PyTorch within 1e-4 at several batch sizes and lengths.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from senpos.pos import CORRECTOR_FILES, vocab_digest
from senpos.runtime import make_session
from senpos.text.vocab import Vocab
from training.pos.model import Tagger, TaggerConfig
from training.pos.optimize import optimize_tagger

log = logging.getLogger(__name__)
PARITY_TOL = 1e-4
WINDOW_CONTEXT = 20
SEGMENTATION = {"dictionary": "jieba_dict.txt (training corpus)", "hmm": False, "conventions": True}


class HalfEmbedding(torch.nn.Module):
    """The word embedding table stored in float16 (half the file size; the table is most of the model),
    looked up and widened to float32. The PyTorch model gets the same rounding, so parity stays exact."""

    def __init__(self, embedding: torch.nn.Embedding):
        super().__init__()
        self.weight = torch.nn.Parameter(embedding.weight.detach().half(), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.embedding(ids, self.weight).float()


def halve_word_embeddings(model: Tagger) -> Tagger:
    model.word_embedding = HalfEmbedding(model.word_embedding)
    return model


def load_checkpoint(run_dir: Path) -> tuple[Tagger, dict]:
    ckpt = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    model = Tagger(TaggerConfig(**ckpt["model_config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval(), ckpt


def random_batch(rng: np.random.Generator, cfg: TaggerConfig, lengths: list[int]):
    """(words, chars, lex, lengths) with random ids; everything past a sentence's length is padding."""
    words = np.zeros((len(lengths), max(lengths)), dtype=np.int64)
    lex = np.zeros_like(words)
    max_chars = 6
    chars = np.zeros((len(lengths), max(lengths), max_chars), dtype=np.int64)
    for i, n in enumerate(lengths):
        words[i, :n] = rng.integers(1, cfg.n_words, n)
        lex[i, :n] = rng.integers(0, max(cfg.n_lex, 1), n)
        for j in range(n):
            k = int(rng.integers(1, max_chars + 1))
            chars[i, j, :k] = rng.integers(1, cfg.n_chars, k)
    return words, chars, lex, np.asarray(lengths, dtype=np.int64)


def feeds(session, words, chars, lex, lengths) -> dict[str, np.ndarray]:
    """The inputs the exported graph has (a model without the lexicon feature has no `lex` input)."""
    named = {"words": words, "chars": chars, "lex": lex, "lengths": lengths}
    return {i.name: named[i.name] for i in session.get_inputs()}


def parity_check(model: Tagger, onnx_path: Path, seed: int = 0) -> float:
    session = make_session(onnx_path, threads=1, want="cpu")
    rng = np.random.default_rng(seed)
    worst = 0.0
    for batch, max_len in ((1, 3), (1, 150), (4, 40), (32, 150)):
        words, chars, lex, lengths = random_batch(rng, model.cfg, [int(x) for x in rng.integers(1, max_len + 1, batch)])
        with torch.no_grad():
            expected = model(*map(torch.from_numpy, (words, chars, lex, lengths))).numpy()
        got = session.run(None, feeds(session, words, chars, lex, lengths))[0]
        mask = np.arange(words.shape[1])[None, :] < lengths[:, None]
        worst = max(worst, float(np.abs(expected - got)[mask].max()))
    if worst > PARITY_TOL:
        raise AssertionError(f"onnxruntime differs from PyTorch by {worst:.2e} (> {PARITY_TOL})")
    log.info("parity check: max |torch - onnxruntime| = %.2e", worst)
    return worst


def export_onnx(model: Tagger, path: Path, words: Vocab, chars: Vocab, tags: list[str],
                lexicon_tags: list[str] | None = None) -> None:
    example = tuple(map(torch.from_numpy, random_batch(np.random.default_rng(0), model.cfg, [5, 2])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on nn.LSTM shape checks; the parity check covers them
        torch.onnx.export(
            model, example, str(path), dynamo=False, opset_version=17,
            input_names=["words", "chars", "lex", "lengths"], output_names=["scores"],
            dynamic_axes={"words": {0: "batch", 1: "time"}, "chars": {0: "batch", 1: "time", 2: "chars"},
                          "lex": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "scores": {0: "batch", 1: "time"}},
        )
    proto = onnx.load(str(path))
    for key, value in (("vocab_sha256", vocab_digest(words, chars)), ("tags", json.dumps(tags)),
                       ("lexicon_tags", json.dumps(lexicon_tags or []))):
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def kept_corrector(out_dir: Path) -> dict | None:
    """The config of a segmentation corrector already in `out_dir` (export-segmenter), if its files are all there:
    exporting a new tagger into a model directory keeps its corrector, which reads only jieba and the text."""
    try:
        corrector = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))["segmentation"]["corrector"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return corrector if all((out_dir / name).is_file() for name in CORRECTOR_FILES) else None


def export(run_dir: Path, prepared_dir: Path, out_dir: Path) -> None:
    model, ckpt = load_checkpoint(run_dir)
    model = halve_word_embeddings(model)
    words, chars = Vocab.load(prepared_dir / "words.json"), Vocab.load(prepared_dir / "chars.json")
    tags = json.loads((prepared_dir / "tags.json").read_text())
    if (len(words), len(chars), tags) != (model.cfg.n_words, model.cfg.n_chars, ckpt["tags"]):
        raise ValueError(f"{prepared_dir}: vocabularies or tags do not match {run_dir / 'checkpoint.pt'}")
    out_dir.mkdir(parents=True, exist_ok=True)
    corrector = kept_corrector(out_dir)
    lexicon_tags = ckpt.get("lexicon_tags", []) if model.cfg.n_lex else []
    export_onnx(model, out_dir / "model.onnx", words, chars, tags, lexicon_tags)
    parity = parity_check(model, out_dir / "model.onnx")
    words.save(out_dir / "words.json")
    chars.save(out_dir / "chars.json")
    (out_dir / "tags.json").write_text(json.dumps(tags))
    (out_dir / "lexicon_tags.json").write_text(json.dumps(lexicon_tags))
    shutil.copy(prepared_dir / "jieba_dict.txt", out_dir / "jieba_dict.txt")
    config = {
        "task": "pos",
        "tagset": "PFR (People's Daily 1998 / PKU)",
        "segmentation": {**SEGMENTATION, "corrector": corrector} if corrector else SEGMENTATION,
        "max_words": ckpt["train_config"]["max_words"],
        "window_context": WINDOW_CONTEXT,
        "model": ckpt["model_config"],
        "word_embeddings": "float16 in model.onnx, widened to float32 after lookup",
        "train_config": ckpt["train_config"],
        "onnx": {"inputs": ["words (batch, time) int64", "chars (batch, time, chars) int64", "lengths (batch,) int64"],
                 "output": "scores (batch, time, tags)", "opset": 17, "parity_max_abs_diff": parity},
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
    for name in ("metrics.json", "training_curves.png", "prepare.json"):
        src = run_dir / name if (run_dir / name).exists() else prepared_dir / name
        if src.exists():
            shutil.copy(src, out_dir / name)
    optimize_tagger(out_dir)
    log.info("exported %s", out_dir)
