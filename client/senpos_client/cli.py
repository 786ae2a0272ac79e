"""`senpos`: the service from the command line.

    senpos sentiment "A wonderful film." "Dull."
    senpos pos-tag "江泽民发表新年讲话。"
    senpos sentiment --input reviews.txt --output scores.jsonl   # text lines or JSON Lines ({"text": ...})
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from senpos_client.client import Client
from senpos_client.errors import SenposError


def read_items(path: Path, words_ok: bool) -> list:
    """One text per line; a `.jsonl` file holds {"text": ...} objects (or {"words": [...]} for pos-tag)."""
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if path.suffix == ".jsonl":
                row = json.loads(line)
                if words_ok and isinstance(row, dict) and "words" in row:
                    items.append(row["words"])
                elif isinstance(row, dict) and "text" in row:
                    items.append(row["text"])
                else:
                    raise SystemExit(f"{path}:{n}: expected an object with a 'text' field")
            else:
                items.append(line)
    return items


def progress(done: int, total: int) -> None:
    if sys.stderr.isatty() or os.environ.get("SENPOS_PROGRESS"):
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def run(client: Client, command: str, items: list, batch: int) -> Iterator[dict]:
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        results = client.sentiment(chunk) if command == "sentiment" else client.pos_tag(chunk)
        for item, result in zip(chunk, results, strict=True):
            yield {"input": item, **dataclasses.asdict(result)}
        progress(min(start + batch, len(items)), len(items))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="senpos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("SENPOS_URL", "http://localhost:3000"),
                        help="service URL (env SENPOS_URL)")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--retries", type=int, default=3)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sentiment", "pos-tag"):
        p = sub.add_parser(name)
        p.add_argument("texts", nargs="*", help="texts (or use --input)")
        p.add_argument("--input", type=Path, help="a text file (one text per line) or JSON Lines")
        p.add_argument("--output", type=Path, help="write JSON Lines here (default: standard output)")
        p.add_argument("--batch", type=int, default=256, help="items per request")
    args = parser.parse_args(argv)
    items = read_items(args.input, args.command == "pos-tag") if args.input else list(args.texts)
    if not items:
        parser.error("give texts or --input")
    with contextlib.ExitStack() as stack:
        out = stack.enter_context(open(args.output, "w", encoding="utf-8")) if args.output else sys.stdout
        client = stack.enter_context(Client(args.url, timeout=args.timeout, retries=args.retries))
        try:
            for row in run(client, args.command, items, args.batch):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        except SenposError as e:
            print(f"senpos: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
