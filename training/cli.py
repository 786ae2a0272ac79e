"""Command-line helpers: a training config is a plain dataclass, and each of its fields is a flag."""

from __future__ import annotations

import argparse
import dataclasses


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, not {text!r}")


def add_dataclass_args(parser: argparse.ArgumentParser, cls: type, skip: tuple[str, ...] = ()) -> None:
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = type(default) if default is not None else str
        kind = _bool if kind is bool else kind  # bool("false") would be True
        parser.add_argument("--" + f.name.replace("_", "-"), type=kind, default=default,
                            help=f"(default: {default})")


def pick(args: argparse.Namespace, cls: type, **extra):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}, **extra)
