"""What a model directory is: its name, a content version, the sha256 of its model.onnx and its headline metrics.

One source for GET /info, the `senpos_model_info` gauge and the labels models carry in BentoML's model store.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

# model -> (reported name, JSON path in evaluation.json) of the figures a user compares models by.
HEADLINE: dict[str, dict[str, tuple[str, ...]]] = {
    "sentiment": {"report_accuracy": ("report", "accuracy"), "validation_accuracy": ("validation", "accuracy")},
    "pos": {"dev_seg_pos_f1": ("end_to_end", "seg_pos_f1"),
            "dev_segmentation_f1": ("end_to_end", "segmentation_f1"),
            "dev_gold_segmentation_accuracy": ("token_accuracy_gold_segmentation",)},
}
NAMES = {"sentiment": "senpos-sentiment", "pos": "senpos-pos"}


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def headline_metrics(model: str, directory: Path) -> dict[str, float]:
    """The model's headline figures from its evaluation.json (absent ones are left out)."""
    try:
        evaluation = json.loads((directory / "evaluation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out = {}
    for name, keys in HEADLINE[model].items():
        value: Any = evaluation
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, int | float):
            out[name] = round(float(value), 4)
    return out


def directory_digest(path: Path) -> str:
    """One sha256 over every file's name and contents."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path).as_posix()}\0{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def model_version(directory: Path) -> str:
    """The first 12 hex digits of the directory's digest: the same files have the same version wherever they are
    found (the repository, BentoML's model store, an image), and any changed file gives a new one."""
    return directory_digest(directory)[:12]


@functools.cache
def model_identity(model: str, directory: Path) -> dict[str, Any]:
    """`{"name", "version", "sha256" (of model.onnx), "metrics"}`."""
    return {"name": NAMES[model], "version": model_version(directory), "sha256": file_sha256(directory / "model.onnx"),
            "metrics": headline_metrics(model, directory)}
