"""`senpos`: the service from the command line.

    senpos sentiment "A wonderful film." "Dull."
    senpos pos-tag "江泽民发表新年讲话。"
    echo "A wonderful film." | senpos sentiment                  # texts on standard input, one per line
    senpos sentiment --input reviews.txt --output scores.jsonl   # text lines or JSON Lines ({"text": ...})

The server is $SENPOS_URL (or --url), its API key $SENPOS_API_KEY. Blank input lines are skipped, and standard
error says which; each result carries its input. The options before the command may also follow it.
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
from typing import IO, NoReturn, cast

from senpos_client._core import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_REQUEST_CHARS,
    ENDPOINTS,
    VERSION,
    PosResult,
    SentimentResult,
    join_documents,
    plan,
    split_documents,
    too_long,
)
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
MODELS = {"sentiment": "sentiment", "pos-tag": "pos"}  # command -> model
COMMANDS = {"sentiment": "English sentiment: positive or negative, and P(positive), for each text.",
            "pos-tag": "Chinese words and their part-of-speech tags, for each text (or list of words)."}
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


@dataclasses.dataclass
class Inputs:
    """The items to send, where each came from ("news.txt:7", "argument 2"), and the blank lines left out."""

    items: list
    places: list[str]
    source: str = ""
    blank: list[int] = dataclasses.field(default_factory=list)

    def skipped(self) -> str | None:
        """What standard error says about the blank lines left out, if any were."""
        if not self.blank:
            return None
        count, shown = len(self.blank), ", ".join(map(str, self.blank[:10])) + (", ..." if len(self.blank) > 10 else "")
        return (f"skipped {count} blank line{'s' if count != 1 else ''} of {self.source} "
                f"(line{'s' if count != 1 else ''} {shown}); each result carries its input")


def parse_lines(lines: Iterable[str], name: str, jsonl: bool, words_ok: bool) -> Inputs:
    """One text per line; JSON Lines hold {"text": ...} objects (or {"words": [...]} for pos-tag). Blank lines
    are left out (and counted in `blank`)."""
    read = Inputs([], [], name)
    items = read.items
    expected = 'an object with a "text" string' + (' or a "words" list of strings' if words_ok else "")
    try:
        for n, line in enumerate(lines, 1):
            line = line.rstrip("\n")
            if not line.strip():
                read.blank.append(n)
                continue
            read.places.append(f"{name}:{n}")
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
    return read


def read_items(source: str | None, texts: list[str], fmt: str, words_ok: bool) -> Inputs:
    """The texts to send: the arguments, the --input file, or standard input (`-`, or when nothing is given)."""
    if texts and source:
        raise Failure("give texts or --input, not both", EXIT_USAGE)
    if texts:
        return Inputs(texts, [f"argument {n}" for n in range(1, len(texts) + 1)], "the arguments")
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
        read = parse_lines(stream, name, jsonl, words_ok)
    if not read.items:
        raise Failure(f"no texts in {name}" + (" (only blank lines)" if read.blank else ""), EXIT_USAGE)
    return read


def progress(done: int, total: int) -> None:
    if sys.stderr.isatty() or os.environ.get("SENPOS_PROGRESS"):
        width = 30
        filled = width * done // max(total, 1)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def requests(inputs: Inputs, command: str, batch: int, max_chars: int) -> tuple[list[list], list[tuple[int, int]]]:
    """The requests the items go out as (at most `batch` items and `max_chars` characters each), worked out
    before any is sent, and for each item sent, (its input's index, where in it it starts): a Chinese text too
    long for a request goes out in parts (senpos_client._core.split_documents); any other text that no request
    can hold is refused here, by its place in the input."""
    items, owners = (split_documents(inputs.items, max_chars) if command == "pos-tag"
                      else (inputs.items, [(i, 0) for i in range(len(inputs.items))]))
    try:
        return plan(items, batch, max_chars, ENDPOINTS[MODELS[command]]), owners
    except ValidationError as e:
        d = e.detail if isinstance(e.detail, dict) else {}
        message = too_long(d["index"], d["chars"], d["limit"], d["endpoint"], "use --max-chars")
        raise Failure(message.replace(f"texts[{d['index']}]", inputs.places[d["index"]], 1), EXIT_REFUSED) from None


def run(client: Client, command: str, inputs: list, chunks: list[list],
        owners: list[tuple[int, int]]) -> Iterator[list[dict]]:
    """Each input's row as soon as all of its parts are answered, request by request, so that what was done is
    written before a failure; the progress bar counts the items sent (parts of a long text each count)."""
    total, done, ready = sum(map(len, chunks)), 0, 0
    pending: list[SentimentResult | PosResult] = []
    for chunk in chunks:
        results: Sequence[SentimentResult | PosResult] = (
            client.sentiment(chunk) if command == "sentiment" else client.pos_tag(chunk))
        pending += results
        done += len(chunk)
        complete = done if done == total else next(k for k in range(done, -1, -1) if owners[k][1] == 0)
        if complete > ready:  # the items before the first part whose text has parts still to come
            joined = (join_documents(cast("list[PosResult]", pending[ready:complete]), owners[ready:complete])
                      if command == "pos-tag" else pending[ready:complete])
            first = owners[ready][0]
            yield [{"input": inputs[first + k], **dataclasses.asdict(result)} for k, result in enumerate(joined)]
            ready = complete
        progress(done, total)


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


def add_global_options(parser: argparse.ArgumentParser, defaults: bool) -> None:
    """--url, --timeout, --retries: on the main parser with their defaults, and on each command without any, so
    that they may come after the command too (and there override what came before it)."""
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--url", default=default(None),
                        help="service URL (default: $SENPOS_URL, else http://localhost:3000)")
    parser.add_argument("--timeout", type=at_least(0.001, float), default=default(60.0),
                        help="seconds per request (default: 60)")
    parser.add_argument("--retries", type=at_least(0), default=default(3),
                        help="retries of 503/429/connection errors (default: 3)")


def build_parser() -> Parser:
    parser = Parser(prog="senpos", description=__doc__, epilog=EXIT_CODES,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"senpos-client {VERSION}")
    add_global_options(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("sentiment", "pos-tag"):
        p = sub.add_parser(name, epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=f"{COMMANDS[name]} Blank input lines are skipped (standard error says which "
                                       "lines); each result carries its input.")
        p.add_argument("texts", nargs="*", help="texts (or use --input, or standard input)")
        p.add_argument("--input", metavar="FILE", help="a text file (one text per line) or JSON Lines; - for "
                                                       "standard input (read when no texts are given)")
        p.add_argument("--format", choices=("auto", "text", "jsonl"), default="auto",
                       help="input format (auto: JSON Lines for a .jsonl file, else one text per line)")
        p.add_argument("--output", metavar="FILE", help="write JSON Lines here (default: standard output)")
        p.add_argument("--batch", type=at_least(1), default=DEFAULT_MAX_ITEMS,
                       help=f"most items per request (default: {DEFAULT_MAX_ITEMS}, the server's default "
                            "SENPOS_MAX_ITEMS)")
        limit = DEFAULT_MAX_REQUEST_CHARS[MODELS[name]]
        p.add_argument("--max-chars", type=at_least(1), default=limit, metavar="N",
                       help=f"most characters per request, all texts together (default: {limit}, the server's "
                            "default SENPOS_MAX_REQUEST_CHARS); a text longer than this is refused before "
                            "anything is sent")
        add_global_options(p, defaults=False)
    return parser


def execute(argv: list[str] | None) -> None:
    args = build_parser().parse_args(argv)
    inputs = read_items(args.input, args.texts, args.format, args.command == "pos-tag")
    chunks, owners = requests(inputs, args.command, args.batch, args.max_chars)
    try:
        client = Client(args.url, timeout=args.timeout, retries=args.retries, max_items=args.batch,
                        max_request_chars={MODELS[args.command]: args.max_chars})
    except ValueError as e:
        raise Failure(str(e), EXIT_USAGE) from None
    if inputs.skipped():
        print(f"senpos: {inputs.skipped()}", file=sys.stderr)
    written = 0
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
            for rows in run(client, args.command, inputs.items, chunks, owners):
                out.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
                out.flush()  # what is done is on disk before the next request can fail
                written += len(rows)
        except SenposError as e:
            message = cli_message(e, has_key=bool(client._config.secrets))
            if written:
                message += f"; {written} of {len(inputs.items)} results written to {args.output or 'standard output'}"
            raise Failure(message, exit_code(e)) from None


def cli_message(error: SenposError, has_key: bool) -> str:
    """The error as the command says it: what to do about a key is said the command's way (the environment;
    there is no option for it), not the SDK's (`api_key=`)."""
    if isinstance(error, AuthenticationError):
        hint = ("check the key in SENPOS_API_KEY" if has_key else
                "set SENPOS_API_KEY (the senpos command reads the key from the environment only)")
        return str(AuthenticationError(error.reason, status=error.status, request_id=error.request_id, hint=hint))
    return str(error)


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
