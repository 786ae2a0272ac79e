"""The real server over HTTP: `bentoml serve` in a subprocess on a free port (bench/harness.py)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess

import httpx
import pytest

from bench.harness import REPO, serve_command

POS = "江泽民发表1998年新年讲话。"


@pytest.fixture(scope="module")
def base(server_url):
    return server_url


@pytest.fixture(scope="module")
def client(server_url):
    with httpx.Client(base_url=server_url, timeout=60) as c:
        yield c


def test_health_endpoints(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert "bentoml_service_request" in client.get("/metrics").text
    docs = client.get("/docs", follow_redirects=True)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = client.get("/docs.json").json()
    assert {"/sentiment", "/pos-tag"} <= set(spec["paths"])


def test_sentiment_results_in_order(client):
    texts = [
        "An absolutely wonderful, moving film with brilliant acting.",
        "Dreadful. Boring, stupid and far too long.",
        "I loved it!",
    ]
    r = client.post("/sentiment", json={"texts": texts})
    assert r.status_code == 200
    out = r.json()
    assert [o["label"] for o in out] == ["positive", "negative", "positive"]
    assert all(0.0 <= o["score"] <= 1.0 for o in out)
    # Same texts reversed: same scores, reversed.
    back = client.post("/sentiment", json={"texts": texts[::-1]}).json()
    assert [o["score"] for o in back] == pytest.approx([o["score"] for o in out][::-1], abs=1e-5)


def test_pos_tag_strings_and_word_lists(client):
    r = client.post("/pos-tag", json={"texts": [POS, ["我们", "热爱", "和平", "。"]]})
    assert r.status_code == 200
    first, second = r.json()
    assert "".join(first["words"]) == POS
    assert all(POS[a:b] == w for w, (a, b) in zip(first["words"], first["offsets"], strict=True))
    assert len(first["tags"]) == len(first["words"]) == len(first["upos"])
    assert second["words"] == ["我们", "热爱", "和平", "。"] and second["offsets"] == [[0, 2], [2, 4], [4, 6], [6, 7]]
    assert second["tags"][-1] == "w" and second["upos"][-1] == "PUNCT"


def test_answers_do_not_depend_on_the_request(client):
    text = "A decent film, though the ending drags."
    alone = client.post("/sentiment", json={"texts": [text]}).json()[0]["score"]
    crowd = ["Terrible! " * 300, text, "Great fun. " * 120] + ["ok"] * 5
    together = client.post("/sentiment", json={"texts": crowd}).json()[1]["score"]
    assert abs(alone - together) <= 1e-5
    tags_alone = client.post("/pos-tag", json={"texts": [POS]}).json()[0]
    tags_crowd = client.post("/pos-tag", json={"texts": ["人民生活水平不断提高。" * 40, POS, ["好"]]}).json()[1]
    assert tags_alone == tags_crowd


def _batch_sizes(client) -> dict[str, dict[str, float]]:
    """Per endpoint, the senpos_batch_size histogram: its `count` (model calls), `sum` (items) and `le=1`
    bucket (calls of one item), summed over the label sets /metrics shows."""
    out: dict[str, dict[str, float]] = {}
    for line in client.get("/metrics").text.splitlines():
        m = re.match(r'senpos_batch_size_(sum|count|bucket)\{(.*)\} ([0-9.e+]+)$', line)
        endpoint = m and re.search(r'endpoint="(\w+)"', m.group(2))
        if not endpoint:
            continue
        kind, labels, value = m.groups()
        if kind == "bucket":
            if 'le="1.0"' not in labels and 'le="1"' not in labels:
                continue
            kind = "le1"
        counts = out.setdefault(endpoint.group(1), {"sum": 0.0, "count": 0.0, "le1": 0.0})
        counts[kind] += float(value)
    return out


def test_concurrent_single_item_requests_are_batched(base, client):
    """64 concurrent one-item requests: every item reaches the model, and some model call carries more than one
    of them (batching happened). How many calls it takes depends on the machine's speed: that is make bench's."""
    zero = {"sum": 0.0, "count": 0.0, "le1": 0.0}
    before = _batch_sizes(client).get("sentiment", zero)

    async def burst():
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            texts = [f"Review {i}: a solid, enjoyable film." for i in range(64)]
            return await asyncio.gather(*[c.post("/sentiment", json={"texts": [t]}) for t in texts])

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 64
    after = _batch_sizes(client)["sentiment"]
    items, calls, single = (after[k] - before[k] for k in ("sum", "count", "le1"))
    assert items == 64
    assert calls - single >= 1, f"64 concurrent requests went to the model in {calls} calls of one item each"


def test_sustained_concurrency_has_no_server_errors(base):
    """320 requests, 32 in flight: every one answered 200. (It caught a BentoML defect in an earlier design
    that called a separate model service: its client dropped calls in flight every 100 calls.)"""

    async def load():
        gate = asyncio.Semaphore(32)
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:

            async def one(i):
                async with gate:
                    return await c.post("/sentiment", json={"texts": [f"Review {i}: a solid, enjoyable film."]})

            return await asyncio.gather(*[one(i) for i in range(320)])

    assert [r.status_code for r in asyncio.run(load())] == [200] * 320


BAD_REQUESTS = [
    ("/sentiment", b'{"texts": ["unterminated', "json"),
    ("/sentiment", b"{}", "texts"),
    ("/sentiment", b'{"texts": "not a list"}', "texts"),
    ("/sentiment", b'{"texts": [1, 2]}', "string"),
    ("/sentiment", b'{"texts": []}', "at least 1"),
    ("/sentiment", b'{"texts": ["  \\n\\t "]}', "whitespace"),
    ("/pos-tag", b'{"texts": [["a", ""]]}', "word 1"),
    ("/pos-tag", b'{"texts": [[]]}', "at least one word"),
    ("/pos-tag", b'{"texts": [42]}', "a string"),
    ("/pos-tag", b'{"items": ["ok"]}', "texts"),
]


@pytest.mark.parametrize("path,body,needle", BAD_REQUESTS)
def test_bad_input_is_a_4xx_naming_the_problem(client, path, body, needle):
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert needle.lower() in r.text.lower()


@pytest.mark.parametrize(
    "ctype",
    ["multipart/form-data", "text/plain", "application/x-www-form-urlencoded", "application/vnd.bentoml+pickle"],
)
def test_non_json_content_type_is_415(client, ctype):
    """Found by schemathesis: a multipart Content-Type without a boundary made BentoML answer 500."""
    r = client.post("/sentiment", content=b'{"texts": ["ok"]}', headers={"content-type": ctype})
    assert r.status_code == 415 and "application/json" in r.json()["error"]


def test_json_with_charset_is_fine(client):
    r = client.post(
        "/sentiment", content=b'{"texts": ["ok"]}', headers={"content-type": "application/json; charset=utf-8"}
    )
    assert r.status_code == 200


@pytest.mark.parametrize("body,setting", [({"texts": ["ok"] * 17}, "SENPOS_MAX_ITEMS"),
                                          ({"texts": ["x" * 5001]}, "SENPOS_MAX_TEXT_CHARS")])
def test_every_size_limit_is_413(client, body, setting):
    """One rule for every size limit (items, characters per text, per request, body bytes): 413, naming it."""
    r = client.post("/sentiment", json=body)
    assert r.status_code == 413 and setting in r.json()["error"]


def test_oversized_body_is_413(client):
    r = client.post(
        "/sentiment", content=b'{"texts": ["' + b"a" * 300_000 + b'"]}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 413 and "SENPOS_MAX_BODY_BYTES" in r.json()["error"]


def test_server_still_serves_after_bad_input(client):
    assert client.post("/sentiment", json={"texts": ["Still here."]}).status_code == 200


def _serve_broken_sentiment(tmp_path, breakage) -> subprocess.CompletedProcess:
    """`bentoml serve` with a damaged copy of the sentiment model; it must exit, not serve."""
    broken = tmp_path / "sentiment"
    shutil.copytree(REPO / "models" / "sentiment", broken)
    breakage(broken)
    return subprocess.run(serve_command(0), cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "SENPOS_SENTIMENT_MODEL": str(broken)})


def test_corrupt_model_stops_the_server_at_start(tmp_path):
    proc = _serve_broken_sentiment(tmp_path, lambda d: (d / "model.onnx").write_bytes(b"\x08\x01corrupt"))
    assert proc.returncode != 0
    assert f"{tmp_path / 'sentiment' / 'model.onnx'}" in proc.stdout + proc.stderr


def test_mismatched_vocabulary_stops_the_server_at_start(tmp_path):
    def swap_two_words(d):
        vocab = json.loads((d / "vocab.json").read_text())
        vocab["itos"][5], vocab["itos"][6] = vocab["itos"][6], vocab["itos"][5]
        (d / "vocab.json").write_text(json.dumps(vocab))

    proc = _serve_broken_sentiment(tmp_path, swap_two_words)
    assert proc.returncode != 0 and "does not match" in proc.stdout + proc.stderr
