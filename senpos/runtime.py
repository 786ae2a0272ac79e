"""onnxruntime sessions: provider choice (CUDA when it can run, else CPU), threads, clear load errors."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
# CUDA provider settings. Every request has its own shapes (batch x words x characters), and cuDNN's default
# exhaustive search benchmarks every algorithm for each new convolution shape (the tagger's character CNN);
# a heuristic pick costs nothing per shape. TF32 matrix products differ from the CPU in the third decimal: off,
# so the GPU gives the CPU's (and training's) answers; these models are too small for TF32 to matter.
CUDA_OPTIONS = {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}


class ModelLoadError(RuntimeError):
    """A model directory is missing a file, holds a corrupt one, or its parts do not match."""


def require_files(model_dir: Path, names: Sequence[str]) -> None:
    for name in names:
        if not (model_dir / name).is_file():
            raise ModelLoadError(f"{model_dir / name}: required file is missing")


def load_vocabs(*paths: Path) -> list:
    """Vocabularies, with a ModelLoadError naming a malformed file."""
    from senpos.text.vocab import Vocab

    try:
        return [Vocab.load(p) for p in paths]
    except ValueError as e:
        raise ModelLoadError(str(e)) from e


def open_model(path: Path, vocab_sha256: str, vocab_files: str, threads: int = 0, want: str | None = None):
    """make_session, and a ModelLoadError when the vocabulary is not the one the model was exported with (its
    digest is in the ONNX metadata)."""
    session = make_session(path, threads=threads, want=want)
    meta = session.get_modelmeta().custom_metadata_map
    if meta.get("vocab_sha256") != vocab_sha256:
        raise ModelLoadError(f"{path.parent / vocab_files}: does not match {path.name} "
                             f"(exported with a vocabulary of {meta.get('vocab_size', '?')} entries)")
    return session


def gpu_visible(env: Mapping[str, str] | None = None, dev: str = "/dev") -> bool:
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


def cuda_available() -> bool:
    """onnxruntime here has its CUDA provider and a GPU is visible."""
    import onnxruntime as ort

    return CUDA in ort.get_available_providers() and gpu_visible()


_cuda_preloaded = False


def preload_cuda(ort) -> None:
    """Load the CUDA and cuDNN libraries before the first CUDA session, once per process.

    onnxruntime-gpu dlopens its CUDA provider lazily, and that library needs libcudart, libcublas and libcudnn.
    A CUDA base image puts them on the loader's path; a pip install (nvidia-*-cu13 wheels, as PyTorch brings)
    does not, and then CUDA fails and the session falls back to CPU. onnxruntime's preload_dlls looks in the
    nvidia site packages first, then the default paths; it only prints what it cannot find.
    """
    global _cuda_preloaded
    if _cuda_preloaded or not hasattr(ort, "preload_dlls"):
        return
    _cuda_preloaded = True
    try:
        ort.preload_dlls()
    except Exception as e:  # a broken install must not stop a CPU fallback
        log.warning("onnxruntime.preload_dlls failed (%s: %s); relying on the default library path",
                    type(e).__name__, e)


def make_session(path: Path, threads: int = 0, want: str | None = None):
    """An InferenceSession for `path`, with a ModelLoadError naming the file on any failure. `want`: "auto" (the
    default), "cuda" or "cpu"; the service passes its SENPOS_PROVIDER setting."""
    import onnxruntime as ort

    if not path.is_file():
        raise ModelLoadError(f"{path}: model file not found")
    want = want or "auto"
    providers = choose_providers(ort.get_available_providers(), want)
    if providers[0] == CUDA:
        preload_cuda(ort)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads  # 0 lets onnxruntime use every core
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        session = ort.InferenceSession(str(path), sess_options=opts,
                                       providers=[(CUDA, CUDA_OPTIONS) if p == CUDA else p for p in providers])
    except Exception as e:  # onnxruntime raises its own exception types for corrupt files
        raise ModelLoadError(f"{path}: cannot load ONNX model ({type(e).__name__}: {e})") from e
    actual, name = session.get_providers(), f"{path.parent.name}/{path.name}"
    if providers[0] == CUDA and actual[0] != CUDA:
        # onnxruntime logs why (a missing libcublas or libcudnn, usually) and carries on on the CPU, ~10x slower:
        # fine for "auto", never for a deployment that asked for the GPU.
        if want.lower() == "cuda":
            raise ModelLoadError(f"{path}: SENPOS_PROVIDER=cuda but onnxruntime could not start CUDA and fell back "
                                 f"to {actual[0]} (its error above names the missing library)")
        log.warning("%s: CUDA was requested but onnxruntime fell back to %s", name, actual[0])
    log.info("%s runs on %s", name, actual[0])
    return session


@dataclass(frozen=True)
class BatchCost:
    """Seconds for one model call over a padded batch of `n` rows and `length` steps, as a straight-line fit:
    length * (step + row_step * n) + call. A recurrent model pays `step` once per time step whatever the batch
    (the fixed cost batching shares) and `row_step` for every row, padding included (the cost padding wastes).
    Past `max_rows` rows a CPU gets slower per row again (the batch falls out of cache), so no batch is wider."""

    step: float
    row_step: float
    call: float
    max_rows: int = 64

    def __call__(self, n: int, length: int) -> float:
        return length * (self.step + self.row_step * n) + self.call


def measure_cost(run: Callable[[int, int], object], max_rows: int = 64, repeats: int = 5) -> BatchCost:
    """Fit a BatchCost for this model on this machine by timing `run(n, length)` on dummy inputs (~0.1 s on
    CPU). Widths are tried up to `max_rows`: a GPU may still get cheaper per row where a CPU no longer does."""

    def best(n: int, length: int) -> float:
        run(n, length)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run(n, length)
            times.append(time.perf_counter() - t0)
        return min(times)

    short, long = best(1, 8), best(1, 64)
    widths = [8]
    while widths[-1] * 2 <= max_rows:
        widths.append(widths[-1] * 2)
    wide = {n: best(n, 64) for n in widths}
    per_step_one_row = max((long - short) / 56, 1e-9)
    row_step = max((wide[8] - long) / (64 * 7), 0.0)
    cheapest = min(t / n for n, t in wide.items())
    max_rows = max(n for n, t in wide.items() if t / n <= 1.03 * cheapest)
    return BatchCost(step=max(per_step_one_row - row_step, 0.0), row_step=row_step,
                     call=max(short - 8 * per_step_one_row, 0.0), max_rows=max_rows)


def plan_batches(lengths: Sequence[int], max_batch: int, cost: BatchCost) -> list[list[int]]:
    """Cut items into model calls of at most `max_batch` rows with the least total `cost`.

    Items are sorted by length and each call takes a run of neighbours, padded only to its own longest, so the
    plan only decides where to cut; dynamic programming finds the cheapest cuts. On a CPU, where one row costs
    almost as much alone as in a batch, this gives small batches of similar length; on a GPU, large ones.
    """
    max_batch = min(max_batch, cost.max_rows)
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    total = [0.0] + [float("inf")] * len(order)  # total[j]: cheapest plan for the j shortest items
    cut = [0] * (len(order) + 1)
    for j in range(1, len(order) + 1):
        longest = lengths[order[j - 1]]
        for i in range(max(0, j - max_batch), j):
            c = total[i] + cost(j - i, longest)
            if c < total[j]:
                total[j], cut[j] = c, i
    batches, j = [], len(order)
    while j > 0:
        batches.append(order[cut[j] : j])
        j = cut[j]
    return batches[::-1]
