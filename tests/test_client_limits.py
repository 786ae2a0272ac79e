"""Long lists are split by characters as well as items (issue 31.2): the SDK (both clients) and the CLI, against a
loopback server that keeps senpos's limits (fast) and against a real senpos server with its default limits."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from senpos_client import AsyncClient, Client, PosResult, ValidationError

from .loopback import Answer, Seen, error, loopback

# The server's defaults (service/settings.py): SENPOS_MAX_ITEMS, SENPOS_MAX_REQUEST_CHARS.
MAX_ITEMS = 256
MAX_CHARS = {"/sentiment": 200_000, "/pos-tag": 16_000}
PEACE = "我们热爱和平。"
CLI = [sys.executable, "-m", "senpos_client.cli"]


def chars(item: str | list[str]) -> int:
    return len(item) if isinstance(item, str) else sum(map(len, item))


def strict(seen: Seen) -> Answer:
    """senpos's rules for items and characters per request (both 413); a text "refuse" is refused (400). Each
    answer carries its text's length, so that the order of the results can be checked."""
    texts = seen.body["texts"]
    if len(texts) > MAX_ITEMS:
        return error(413, f"texts has {len(texts)} items; the limit is {MAX_ITEMS} (SENPOS_MAX_ITEMS)", "req-items")
    total = sum(map(chars, texts))
    if total > MAX_CHARS[seen.path]:
        return error(413, f"the request has {total} characters in all; the limit is {MAX_CHARS[seen.path]} "
                          "(SENPOS_MAX_REQUEST_CHARS): split it into smaller requests", "req-413")
    if "refuse" in texts:
        return error(400, f"texts.{texts.index('refuse')}: refused", "req-400")
    if seen.path == "/sentiment":
        return Answer(200, [{"label": "positive", "score": chars(t) / 1e6} for t in texts])
    return Answer(200, [{"words": [str(chars(t))], "tags": ["n"], "upos": ["NOUN"], "offsets": [[0, chars(t)]]}
                        for t in texts])


@pytest.fixture
def server():
    with loopback(strict) as lb:
        yield lb


pytestmark = pytest.mark.usefixtures("no_client_env")


def sizes(server) -> list[tuple[int, int]]:
    """(items, characters) of each request the server got."""
    return [(len(s.body["texts"]), sum(map(chars, s.body["texts"]))) for s in server.seen]


def test_the_client_splits_by_characters_as_well_as_items(server):
    pos = [PEACE * 850] * 3  # 5,950 characters each: one request may hold two of them (16,000)
    reviews = [f"{i:05d}" + "x" * 59_995 for i in range(10)]  # 60,000 each: three per /sentiment request
    mixed = ["好" * 10] * 300 + [["我们", "热爱"] * 1000] * 5  # over the item limit, then 4,000 characters each
    with Client(server.url) as client:
        assert client.max_request_chars == {"sentiment": 200_000, "pos": 16_000}
        tagged = client.pos_tag(pos)
        assert sizes(server) == [(2, 11_900), (1, 5_950)]
        assert [r.offsets for r in tagged] == [[(0, 5_950)]] * 3 and isinstance(tagged[0], PosResult)
        server.seen.clear()
        scores = client.sentiment(reviews)
        assert sizes(server) == [(3, 180_000)] * 3 + [(1, 60_000)]
        assert [s.score for s in scores] == [0.06] * 10
        server.seen.clear()
        tagged = client.pos_tag(mixed)
        assert sizes(server) == [(256, 2_560), (47, 12_440), (2, 8_000)]
        assert [r.offsets[0][1] for r in tagged] == [10] * 300 + [4_000] * 5
    server.seen.clear()

    async def go():
        async with AsyncClient(server.url, concurrency=2) as client:
            return await client.pos_tag(pos), await client.sentiment(reviews)

    tagged, scores = asyncio.run(go())
    assert sorted(sizes(server)) == sorted([(2, 11_900), (1, 5_950)] + [(3, 180_000)] * 3 + [(1, 60_000)])
    assert len(tagged) == 3 and len(scores) == 10


def test_the_limits_can_be_set_to_match_a_server_configured_otherwise(server):
    with Client(server.url, max_items=4, max_request_chars=10) as client:
        assert client.max_request_chars == {"sentiment": 10, "pos": 10}
        client.sentiment(["abcd", "efg", "hij", "k", "l", "m", "n", "o"])
    assert sizes(server) == [(3, 10), (4, 4), (1, 1)]
    server.seen.clear()
    with Client(server.url, max_request_chars={"pos": 5}) as client:
        assert client.max_request_chars == {"sentiment": 200_000, "pos": 5}
        client.pos_tag(["abc", ["de", "f"], "gh"])
    assert sizes(server) == [(1, 3), (2, 5)]
    for bad in (0, {"pos": 0}, {"ner": 5}, {"pos": "5"}, True):
        with pytest.raises((ValueError, TypeError), match="max_request_chars"):
            Client(server.url, max_request_chars=bad)  # type: ignore[arg-type]


def test_a_text_over_the_request_limit_is_refused_before_anything_is_sent(server):
    """An English text (or a Chinese word list) cannot be cut: over the limit, it is refused unsent."""
    sent: list[httpx.Request] = []
    items = ["good"] * 300 + ["x" * 200_001] + ["good"]
    with httpx.Client(event_hooks={"request": [sent.append]}) as own, \
            Client(server.url, http_client=own) as client, pytest.raises(ValidationError) as info:
        client.sentiment(items)
    assert sent == [] and server.seen == []
    error_ = info.value
    assert error_.status is None and error_.request_id is None
    assert error_.detail == {"index": 300, "chars": 200_001, "limit": 200_000, "endpoint": "/sentiment"}
    for says in ("texts[300]", "200001 characters", "200000", "/sentiment", "SENPOS_MAX_REQUEST_CHARS",
                 "max_request_chars", "nothing was sent"):
        assert says in str(error_), str(error_)
    with Client(server.url) as client, pytest.raises(ValidationError, match=r"texts\[1\] has 16001 characters"):
        client.pos_tag(["好", ["我"] * 16_001])
    assert server.seen == []

    async def go():
        async with AsyncClient(server.url, max_request_chars=100) as client:
            await client.sentiment(["fine"] * 10 + ["x" * 101])

    with pytest.raises(ValidationError, match=r"texts\[10\] has 101 characters"):
        asyncio.run(go())
    assert server.seen == []


def article(sentences: int, seed: int = 0, breaks: bool = True) -> str:
    """Chinese text of varied sentences, each ended by one of the cut points, with a paragraph break now and
    then (`breaks`)."""
    ends = "。！？；…"
    out = []
    for i in range(sentences):
        out.append(f"{i}新华社北京电记者报道" + "我们热爱和平" * (1 + (i * 7 + seed) % 5) + ends[i % len(ends)])
        if breaks and i % 9 == 8:
            out.append("\n")
    return "".join(out)


def test_documents_are_cut_after_sentence_ends_within_the_limit():
    from senpos_client._core import DOCUMENT_ENDS, cut_document

    text = article(400)
    for limit in (50, 333, 1000):
        parts = cut_document(text, limit)
        assert "".join(text[a:b] for a, b in parts) == text and parts[0][0] == 0
        assert all(b - a <= limit for a, b in parts)
        assert all(text[b - 1] in DOCUMENT_ENDS for a, b in parts[:-1])  # no sentence here is over 50
    assert cut_document("好" * 25, 10) == [(0, 10), (10, 20), (20, 25)]  # one long sentence: cut inside
    assert cut_document("短句。" + "好" * 12, 10) == [(0, 3), (3, 13), (13, 15)]
    assert cut_document("短", 10) == [(0, 1)]


def test_the_clients_send_a_long_text_in_parts_and_join_them(server):
    text = article(2000)  # over 16,000 characters: a request's limit
    assert len(text) > MAX_CHARS["/pos-tag"]
    with Client(server.url) as client:
        (joined, short) = client.pos_tag([text, PEACE])
    parts = [t for s in server.seen for t in s.body["texts"]][:-1]
    assert "".join(parts) == text and all(len(p) <= MAX_CHARS["/pos-tag"] for p in parts) and len(parts) > 1
    # The loopback server answers each part with one word spanning it: joined, they tile the whole text.
    starts = [sum(map(len, parts[:k])) for k in range(len(parts))]
    assert joined.offsets == [(a, a + len(p)) for a, p in zip(starts, parts, strict=True)]
    assert joined.words == [str(len(p)) for p in parts] and joined.upos == ["NOUN"] * len(parts)
    assert short.offsets == [(0, len(PEACE))]

    async def go():
        async with AsyncClient(server.url, concurrency=3) as client:
            return await client.pos_tag([PEACE, text])

    assert asyncio.run(go())[1] == joined


def run_cli(*args: str, cwd: Path, url: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "SENPOS_API_KEY"}, "SENPOS_URL": url, **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, encoding="utf-8", timeout=120, cwd=cwd,
                          env=env)


def news(path: Path, lines: int = 200, width: int = 102) -> list[str]:
    texts = [f"{i:03d}" + ("新华社北京电记者报道我们热爱和平。" * 10)[: width - 3] for i in range(lines)]
    path.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    return texts


def test_the_cli_splits_by_characters_and_writes_what_was_done_before_failing(server, tmp_path):
    texts = news(tmp_path / "news.txt")  # 20,400 characters: over one /pos-tag request's 16,000
    done = run_cli("pos-tag", "--input", "news.txt", "--output", "news.jsonl", cwd=tmp_path, url=server.url)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "news.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == texts and sizes(server) == [(156, 15_912), (44, 4_488)]

    server.seen.clear()
    (tmp_path / "news.txt").write_text("".join(t + "\n" for t in [*texts[:190], "refuse", *texts[190:]]),
                                       encoding="utf-8")
    failed = run_cli("pos-tag", "--input", "news.txt", "--output", "news.jsonl", cwd=tmp_path, url=server.url)
    assert failed.returncode == 3 and "Traceback" not in failed.stderr
    (line,) = failed.stderr.splitlines()
    assert "refused" in line and "req-400" in line and "156 of 201 results written to news.jsonl" in line, line
    rows = [json.loads(line) for line in (tmp_path / "news.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == texts[:156]  # the first request's results, all of them

    server.seen.clear()
    again = run_cli("--retries", "0", "pos-tag", "--input", "news.txt", "--max-chars", "1020", cwd=tmp_path,
                    url=server.url)
    assert again.returncode == 3 and len(again.stdout.splitlines()) == 190  # then to standard output
    assert "190 of 201 results written to standard output" in again.stderr
    assert {n for n, _ in sizes(server)} == {10}


def test_the_cli_refuses_a_line_over_the_request_limit_before_sending_anything(server, tmp_path):
    lines = ["Fine."] * 6 + ["x" * 101] + ["Fine."]
    (tmp_path / "news.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    done = run_cli("sentiment", "--input", "news.txt", "--output", "out.jsonl", "--max-chars", "100", cwd=tmp_path,
                   url=server.url)
    assert done.returncode == 3 and server.seen == [] and not (tmp_path / "out.jsonl").exists()
    (line,) = done.stderr.splitlines()
    for says in ("news.txt:7", "101 characters", "100", "use --max-chars", "SENPOS_MAX_REQUEST_CHARS",
                 "nothing was sent"):
        assert says in line, line
    argument = run_cli("sentiment", "--max-chars", "100", "fine", "x" * 101, cwd=tmp_path, url=server.url)
    assert argument.returncode == 3 and "argument 2" in argument.stderr and server.seen == []


def test_the_cli_tags_a_1_mb_file_in_parts_with_a_progress_bar(server, tmp_path):
    lines = [article(20000, seed=1, breaks=False), PEACE, article(3000, seed=2, breaks=False)]
    path = tmp_path / "article.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    assert path.stat().st_size > 2**20 and len(lines[0]) > 20 * MAX_CHARS["/pos-tag"]
    done = run_cli("pos-tag", "--input", "article.txt", "--output", "out.jsonl", cwd=tmp_path, url=server.url,
                   env={"SENPOS_PROGRESS": "1"})  # the bar is drawn on a terminal, or when asked
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == lines
    for row in rows:  # the parts' spans tile each text
        assert row["offsets"][0][0] == 0 and row["offsets"][-1][1] == len(row["input"])
        assert all(a[1] == b[0] for a, b in zip(row["offsets"], row["offsets"][1:], strict=False))
    sent = sum(len(s.body["texts"]) for s in server.seen)
    assert f"] {sent}/{sent}" in done.stderr and sent > len(rows)  # the bar counts the parts sent


@pytest.fixture(scope="module")
def default_server():
    """A real senpos server with its default limits (the shared test server's are smaller)."""
    from bench.harness import running_server

    with running_server({"SENPOS_LAYOUT": "single", "SENPOS_API_WORKERS": "1"}) as url:
        yield url


def test_the_issue_examples_against_a_real_server(default_server, tmp_path):
    texts = news(tmp_path / "news.txt")
    done = run_cli("pos-tag", "--input", "news.txt", "--output", "news.jsonl", cwd=tmp_path, url=default_server)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / "news.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["input"] for r in rows] == texts and all("".join(r["words"]) == r["input"] for r in rows)

    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}, timeout=120) as own, \
            Client(default_server, http_client=own) as client:
        tagged = client.pos_tag([PEACE * 850] * 3)  # 17,850 characters: two texts, then one
        assert [len(json.loads(r.content)["texts"]) for r in sent] == [2, 1]
        assert len(tagged) == 3 and all("".join(r.words) == PEACE * 850 for r in tagged)


def test_a_long_article_is_tagged_as_its_parts_are(default_server):
    """A 42,000-character article through the SDK: one answer, equal to tagging its parts one by one with the
    offsets moved to where each part starts."""
    from senpos_client._core import cut_document

    text = article(3000)
    assert len(text) > 40_000
    with Client(default_server, timeout=120) as client:
        (whole,) = client.pos_tag([text])
        parts = cut_document(text, 16_000)
        alone = [client.pos_tag([text[a:b]])[0] for a, b in parts]
    assert whole.words == [w for r in alone for w in r.words] and whole.tags == [t for r in alone for t in r.tags]
    assert whole.offsets == [(x + a, y + a) for (a, _), r in zip(parts, alone, strict=True) for x, y in r.offsets]
    assert all(text[x:y] == w for w, (x, y) in zip(whole.words, whole.offsets, strict=True))
