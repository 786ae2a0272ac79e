"""Where the training and benchmark data lives: one place for every script and test that reads it."""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    """`$SENPOS_DATA` when set (a machine without the shared folder, like a GPU box), else the `shared/data`
    folder next to this checkout."""
    return Path(os.environ.get("SENPOS_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
