"""The client SDK and CLI against the real server, and the retry behaviour against a loopback stub."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading

import httpx
import pytest
from senpos_client import (
    AsyncClient,
    Client,
    NotFoundError,
    PosResult,
    SentimentResult,
    ServiceUnavailable,
    ValidationError,
)

from .conftest import SERVER_LIMITS

MAX_ITEMS = int(SERVER_LIMITS["SENPOS_MAX_ITEMS"])


def test_sync_client_round_trip_and_chunking(server_url):
    texts = [f"Review {i}: {'a wonderful film' if i % 2 else 'a dreadful bore'}." for i in range(2 * MAX_ITEMS + 5)]
    with Client(server_url, max_items=MAX_ITEMS) as client:
        client.wait_until_ready(timeout=30)
        results = client.sentiment(texts)  # more items than one request may hold: split transparently
        assert len(results) == len(texts) and all(isinstance(r, SentimentResult) for r in results)
        assert [r.label for r in results[:4]] == ["negative", "positive", "negative", "positive"]
        single = client.sentiment([texts[7]])[0]
        assert abs(single.score - results[7].score) <= 1e-5
        tagged = client.pos_tag(["我们热爱和平。", ["北京", "欢迎", "你"]])
        assert isinstance(tagged[0], PosResult) and "".join(tagged[0].words) == "我们热爱和平。"
        assert tagged[1].words == ["北京", "欢迎", "你"] and len(tagged[1].upos or []) == 3
        assert tagged[1].offsets == [(0, 2), (2, 4), (4, 5)]


def test_async_client_keeps_order_with_chunks_in_flight(server_url):
    texts = [f"Film {i} was {'great' if i % 3 else 'awful'}." for i in range(3 * MAX_ITEMS)]

    async def go():
        async with AsyncClient(server_url, max_items=MAX_ITEMS, concurrency=3) as client:
            await client.wait_until_ready(timeout=30)
            return await client.sentiment(texts), await client.pos_tag(["你好。"] * (MAX_ITEMS + 1))

    async def refused():
        async with AsyncClient(server_url, max_items=2, concurrency=2) as client:
            with pytest.raises(ValidationError, match="whitespace"):
                await client.sentiment(["Fine.", "Good.", "Bad.", "   ", "Fine.", "Good."])  # the middle chunk

    scores, tags = asyncio.run(go())
    asyncio.run(refused())
    with Client(server_url) as client:
        one_by_one = [client.sentiment([t])[0].score for t in texts[:5]]
    assert [r.score for r in scores[:5]] == pytest.approx(one_by_one, abs=1e-5)
    assert len(tags) == MAX_ITEMS + 1


def test_validation_error_carries_the_server_message(server_url):
    with Client(server_url) as client, pytest.raises(ValidationError) as info:
        client.sentiment(["   "])
    assert info.value.status == 400 and "whitespace" in info.value.message
    with Client(server_url, max_items=MAX_ITEMS + 1) as client, pytest.raises(ValidationError) as too_many:
        client.sentiment(["Fine."] * (MAX_ITEMS + 1))  # over the server's own limit
    assert too_many.value.status in (400, 413) and str(MAX_ITEMS) in too_many.value.message


def test_a_wrong_path_is_not_found_rather_than_refused_input(server_url):
    with Client(server_url + "/api/v2") as client, pytest.raises(NotFoundError) as info:
        client.sentiment(["A wonderful film."])
    assert not isinstance(info.value, ValidationError) and info.value.status == 404
    assert "/api/v2/sentiment" in str(info.value) and "senpos server" in str(info.value)


def test_a_given_http_client_and_headers_are_used_and_left_open(server_url):
    sent: list[httpx.Request] = []
    with httpx.Client(event_hooks={"request": [sent.append]}) as own:
        with Client(server_url, http_client=own, headers={"X-Tenant": "team-a"}) as client:
            assert client.sentiment(["A wonderful film."])[0].label == "positive"
            assert client.pos_tag(["我们热爱和平。"])[0].words
        assert not own.is_closed and own.get(f"{server_url}/livez").status_code == 200
    assert [r.url.path for r in sent[:2]] == ["/sentiment", "/pos-tag"]
    assert all(r.headers["x-tenant"] == "team-a" for r in sent[:2])


class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers 503 (Retry-After: 0) `failures` times, then a valid /sentiment answer."""

    failures = 2
    calls = 0

    def do_POST(self):
        type(self).calls += 1
        self.rfile.read(int(self.headers["Content-Length"]))
        if type(self).calls <= type(self).failures:
            self.send_response(503)
            self.send_header("Retry-After", "0")
            body = b'{"error": "overloaded"}'
        else:
            self.send_response(200)
            body = json.dumps([{"label": "positive", "score": 0.9}]).encode()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def stub():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Stub.calls = 0
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_retries_503_then_succeeds(stub):
    _Stub.failures = 2
    with Client(stub, retries=3, backoff=0.01) as client:
        assert client.sentiment(["x"])[0].score == 0.9
    assert _Stub.calls == 3


def test_gives_up_after_retries(stub):
    _Stub.failures = 99
    with Client(stub, retries=2, backoff=0.01) as client, pytest.raises(ServiceUnavailable) as info:
        client.sentiment(["x"])
    assert info.value.attempts == 3 and info.value.last_status == 503 and _Stub.calls == 3


def test_async_retries_503(stub):
    _Stub.failures = 1

    async def go():
        async with AsyncClient(stub, retries=2, backoff=0.01) as client:
            return await client.sentiment(["x"])

    assert asyncio.run(go())[0].label == "positive" and _Stub.calls == 2


def test_connection_errors_are_retried_then_reported():
    with Client("http://127.0.0.1:9", retries=1, backoff=0.01, timeout=2) as client, \
            pytest.raises(ServiceUnavailable, match="cannot connect"):
        client.sentiment(["x"])


def test_cli_texts_and_file_mode(server_url, tmp_path):
    cli = [sys.executable, "-m", "senpos_client.cli", "--url", server_url]
    out = subprocess.run([*cli, "sentiment", "A wonderful film.", "Awful."], capture_output=True, text=True,
                         timeout=60, check=True).stdout.splitlines()
    assert [json.loads(line)["label"] for line in out] == ["positive", "negative"]
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "我们热爱和平。"}\n{"words": ["北京", "欢迎", "你"]}\n', encoding="utf-8")
    subprocess.run([*cli, "pos-tag", "--input", str(src), "--output", str(tmp_path / "out.jsonl"), "--batch", "1"],
                   check=True, timeout=60, capture_output=True)
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows[1]["words"] == ["北京", "欢迎", "你"] and len(rows) == 2
    bad = subprocess.run([*cli, "sentiment", " "], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3 and "whitespace" in bad.stderr  # refused input


def test_cli_reads_standard_input_and_the_url_from_the_environment(server_url):
    env = {**os.environ, "SENPOS_URL": server_url}
    piped = subprocess.run([sys.executable, "-m", "senpos_client.cli", "sentiment"], capture_output=True, text=True,
                           input="A wonderful film.\nAwful.\n", timeout=60, env=env)
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(line)["label"] for line in piped.stdout.splitlines()] == ["positive", "negative"]
    jsonl = subprocess.run([sys.executable, "-m", "senpos_client.cli", "pos-tag", "--input", "-", "--format", "jsonl"],
                           input='{"words": ["北京", "欢迎", "你"]}\n', capture_output=True, text=True, timeout=60,
                           env=env)
    assert jsonl.returncode == 0 and json.loads(jsonl.stdout)["words"] == ["北京", "欢迎", "你"], jsonl.stderr
