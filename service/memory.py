"""A serving process's memory: long-lived objects kept out of the garbage collector's way, freed heap given back."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import time

log = logging.getLogger("senpos")
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6") if ctypes.util.find_library("c") else None


def trim_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them after a large request otherwise)."""
    if _libc is not None and hasattr(_libc, "malloc_trim"):
        _libc.malloc_trim(0)


def freeze_long_lived_objects() -> None:
    """The vocabularies and jieba's dictionary are ~230k long-lived objects that every full garbage collection
    would walk with the GIL held; frozen, they are never walked again."""
    gc.freeze()
    gc.callbacks.append(_report_slow_collections)


_gc_started = 0.0


def _report_slow_collections(phase: str, info: dict) -> None:
    """Log a full garbage collection that stalled this process for over 50 ms: a latency spike no request explains."""
    global _gc_started
    if phase == "start":
        _gc_started = time.perf_counter()
    elif info["generation"] == 2 and (paused := time.perf_counter() - _gc_started) > 0.05:
        log.warning("a full garbage collection stalled this worker for %.0f ms (%d objects collected)",
                    paused * 1000, info["collected"])
