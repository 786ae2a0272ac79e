"""onnxruntime sessions: provider choice (CUDA when it can run, else CPU), threads, clear load errors."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


class ModelLoadError(RuntimeError):
    """A model directory is missing a file, holds a corrupt one, or its parts do not match."""


def require_files(model_dir: Path, names: Sequence[str]) -> None:
    for name in names:
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"{model_dir / name}: required file is missing")


def gpu_visible(env: dict[str, str] | None = None, dev: str = "/dev") -> bool:
    """True when an NVIDIA device node exists and CUDA_VISIBLE_DEVICES does not hide every GPU."""
    env = os.environ if env is None else env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return Path(dev, "nvidia0").exists() or Path(dev, "dxg").exists()


def choose_providers(available: Sequence[str], want: str = "auto", has_gpu: bool | None = None) -> list[str]:
    """Provider list for a session. `want` is "auto", "cuda" or "cpu" (env SENPOS_PROVIDER)."""
    want = want.lower()
    if want not in ("auto", "cuda", "cpu"):
        raise ValueError(f"SENPOS_PROVIDER must be auto, cuda or cpu, not {want!r}")
    if want == "cpu":
        return [CPU]
    cuda_ok = CUDA in available and (gpu_visible() if has_gpu is None else has_gpu)
    if want == "cuda" and not cuda_ok:
        raise ModelLoadError(f"SENPOS_PROVIDER=cuda but CUDA cannot run here (available providers: {list(available)})")
    return [CUDA, CPU] if cuda_ok else [CPU]


def make_session(path: Path, threads: int = 0, want: str | None = None):
    """An InferenceSession for `path`, with a ModelLoadError naming the file on any failure."""
    import onnxruntime as ort

    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    want = want or os.environ.get("SENPOS_PROVIDER", "auto")
    providers = choose_providers(ort.get_available_providers(), want)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 0 lets onnxruntime use every core
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as e:  # onnxruntime raises its own exception types for corrupt files
        raise ModelLoadError(f"{path}: cannot load ONNX model ({type(e).__name__}: {e})") from e
    actual = session.get_providers()
    if providers[0] == CUDA and actual[0] != CUDA:
        log.warning("%s: CUDA was requested but onnxruntime fell back to %s", path.name, actual[0])
    log.info("%s runs on %s", path.name, actual[0])
    return session


def length_buckets(lengths: Sequence[int], max_batch: int) -> list[list[int]]:
    """Indices sorted by length and cut into batches of at most `max_batch`.

    Each batch is then padded only to its own longest member, never to a global maximum.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + max_batch] for i in range(0, len(order), max_batch)]
