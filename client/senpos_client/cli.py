"""`senpos`: the service from the command line.

    senpos sentiment "A wonderful film." "Dull."
    senpos pos-tag "江泽民发表新年讲话。"
    echo "A wonderful film." | senpos sentiment                  # texts on standard input, one per line
    senpos sentiment --input reviews.txt --output scores.jsonl   # text lines or JSON Lines ({"text": ...})

The server is $SENPOS_URL (or --url), its API key $SENPOS_API_KEY.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import IO, NoReturn

from senpos_client._core import VERSION, PosResult, SentimentResult
from senpos_client.client import Client
from senpos_client.errors import (
    AuthenticationError,
    NotFoundError,
    SenposError,
    ServerError,
    ServiceUnavailable,
    Timeout,
    ValidationError,
)

EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED, EXIT_UNAVAILABLE = 1, 2, 3, 4
EXIT_CODES = """exit codes:
  0  done
  1  the server failed (5xx) or answered something unreadable
  2  usage: bad arguments, an unreadable input or output file, a malformed URL, a missing or refused API key
  3  refused input: a malformed input line, or the server refused the texts (4xx)
  4  the server is unreachable, overloaded through every retry, timed out, or is not a senpos server (404)
"""


class Failure(Exception):
    """Ends the command with one line on standard error and an exit code."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


class Parser(argparse.ArgumentParser):
    """Usage errors as one line (with where to find help), exit code 2."""

    def error(self, message: str) -> NoReturn:
        raise Failure(f"{message} (see {self.prog} --help)", EXIT_USAGE)


def at_least(minimum: int | float, kind: type = int):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return number

    return parse


def parse_lines(lines: Iterable[str], name: str, jsonl: bool, words_ok: bool) -> list:
    """One text per line; JSON Lines hold {"text": ...} objects (or {"words": [...]} for pos-tag)."""
    items: list = []
    expected = 'an object with a "text" string' + (' or a "words" list of strings' if words_ok else "")
    try:
        for n, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            if not jsonl:
                items.append(line)
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise Failure(f"{name}:{n}: not JSON ({e.msg} at column {e.colno})", EXIT_REFUSED) from None
            words = row.get("words") if isinstance(row, dict) and words_ok else None
            if isinstance(words, list) and all(isinstance(w, str) for w in words):
                items.append(words)
            elif isinstance(row, dict) and "words" not in row and isinstance(row.get("text"), str):
                items.append(row["text"])
            else:
                raise Failure(f"{name}:{n}: expected {expected}", EXIT_REFUSED)
    except UnicodeDecodeError as e:
        raise Failure(f"{name}: not UTF-8 text ({e.reason} at byte {e.start})", EXIT_REFUSED) from None
    return items


def read_items(source: str | None, texts: list[str], fmt: str, words_ok: bool) -> list:
    """The texts to send: the arguments, the --input file, or standard input (`-`, or when nothing is given)."""
    if texts and source:
        raise Failure("give texts or --input, not both", EXIT_USAGE)
    if texts:
        return texts
    if source is None and (sys.stdin is None or sys.stdin.isatty()):
        raise Failure("no texts: give them as arguments, with --input FILE, or on standard input", EXIT_USAGE)
    name = "<stdin>" if source in (None, "-") else source
    jsonl = fmt == "jsonl" or (fmt == "auto" and name.endswith(".jsonl"))
    with contextlib.ExitStack() as stack:
        stream: IO[str]
        if name == "<stdin>":
            wrapper = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline=None)
            stack.callback(wrapper.detach)  # leave sys.stdin itself open
            stream = wrapper
        else:
            try:
                stream = stack.enter_context(open(name, encoding="utf-8-sig"))
            except OSError as e:
                raise Failure(f"cannot read {name}: {e.strerror or e}", EXIT_USAGE) from None
        items = parse_lines(stream, name, jsonl, words_ok)
    if not items:
        raise Failure(f"no texts in {name}", EXIT_USAGE)
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
        results: Sequence[SentimentResult | PosResult] = (
            client.sentiment(chunk) if command == "sentiment" else client.pos_tag(chunk))
        for item, result in zip(chunk, results, strict=True):
            yield {"input": item, **dataclasses.asdict(result)}
        progress(min(start + batch, len(items)), len(items))


def exit_code(error: SenposError) -> int:
    if isinstance(error, AuthenticationError):
        return EXIT_USAGE
    if isinstance(error, ValidationError):
        return EXIT_REFUSED
    if isinstance(error, (NotFoundError, ServiceUnavailable, Timeout)):
        return EXIT_UNAVAILABLE
    if isinstance(error, ServerError) and error.status in (502, 504):  # a proxy or the server gave up waiting
        return EXIT_UNAVAILABLE
    return EXIT_FAILED


def build_parser() -> Parser:
    parser = Parser(prog="senpos", description=__doc__, epilog=EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"senpos-client {VERSION}")
    parser.add_argument("--url", help="service URL (default: $SENPOS_URL, else http://localhost:3000)")
    parser.add_argument("--timeout", type=at_least(0.001, float), default=60.0, help="seconds per request")
    parser.add_argument("--retries", type=at_least(0), default=3, help="retries of 503/429/connection errors")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sentiment", "pos-tag"):
        p = sub.add_parser(name, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("texts", nargs="*", help="texts (or use --input, or standard input)")
        p.add_argument("--input", metavar="FILE", help="a text file (one text per line) or JSON Lines; - for "
                                                       "standard input (read when no texts are given)")
        p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                       help="input format (auto: JSON Lines for a .jsonl file, else one text per line)")
        p.add_argument("--output", metavar="FILE", help="write JSON Lines here (default: standard output)")
        p.add_argument("--batch", type=at_least(1), default=256, help="items per request")
    return parser


def execute(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    items = read_items(args.input, args.texts, args.format, args.command == "pos-tag")
    try:
        client = Client(args.url, timeout=args.timeout, retries=args.retries)
    except ValueError as e:
        raise Failure(str(e), EXIT_USAGE) from None
    with contextlib.ExitStack() as stack:
        stack.enter_context(client)
        out: IO[str]
        if args.output:
            try:
                out = stack.enter_context(open(args.output, "w", encoding="utf-8"))
            except OSError as e:
                raise Failure(f"cannot write {args.output}: {e.strerror or e}", EXIT_USAGE) from None
        else:
            out = sys.stdout
            if isinstance(out, io.TextIOWrapper):
                out.reconfigure(encoding="utf-8")  # JSON Lines are UTF-8 whatever the locale
        try:
            for row in run(client, args.command, items, args.batch):
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
        except SenposError as e:
            raise Failure(str(e), exit_code(e)) from None


def main(argv: list[str] | None = None) -> int:
    try:
        execute(argv)
    except Failure as e:
        print(f"senpos: {' '.join(str(e).split())}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        print("senpos: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
