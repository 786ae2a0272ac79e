"""The serving core through the real server, in both layouts (SENPOS_LAYOUT), at the default limits: load it can
serve is never refused, a request's cost is bounded, maximal requests do not hold small ones up, work nobody
waits for is dropped, memory comes back, and both layouts answer exactly what the predictors compute."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.harness import BENTOML, reserved_port, running_server, server_process
from senpos.pos import PosTagger
from senpos.sentiment import SentimentPredictor

from .conftest import FIXTURES, REPO, SHARED_DATA

REVIEW = "A decent film with a strong cast, though the second half drags and the ending is predictable. " * 3
MAXIMAL_POS = 16_000  # the default SENPOS_MAX_REQUEST_CHARS for /pos-tag


def chinese_text(chars: int) -> str:
    """Real People's Daily text when the shared data is here, else the fixture's, repeated."""
    path = SHARED_DATA / "zh_pos" / "pfr1998_01" / "dev.jsonl.gz"
    if path.exists():
        with gzip.open(path, "rt", encoding="utf-8") as f:
            source = "".join("".join(json.loads(line)["words"]) for _, line in zip(range(2000), f, strict=False))
    else:
        source = "".join("".join(json.loads(line)["words"]) for line in (FIXTURES / "pos_tiny.jsonl").open())
    return (source * (chars // len(source) + 1))[:chars]


@pytest.fixture(scope="module", params=["single", "split"])
def server(request):
    with server_process({"SENPOS_LAYOUT": request.param}) as (base, proc):
        yield base, proc, request.param


@pytest.fixture
def busy_core():
    """A core busy elsewhere (a shared host, a pod just scaled up) while the test runs."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield
    hog.kill()
    hog.wait()


async def closed_loop(base: str, clients: int, seconds: float, texts: list[str]) -> list[int]:
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=httpx.Limits(max_connections=clients)) as c:

        async def client():
            while time.monotonic() < deadline:
                statuses.append((await c.post("/sentiment", json={"texts": texts})).status_code)

        await asyncio.gather(*(client() for _ in range(clients)))
    return statuses


def test_64_one_review_clients_from_the_first_moment_get_only_200s(server, busy_core):
    base, _, _ = server
    statuses = asyncio.run(closed_loop(base, 64, 4, [REVIEW]))
    assert len(statuses) >= 64 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


def test_64_one_review_clients_right_after_client_batched_traffic_get_only_200s(server, busy_core):
    base, _, _ = server
    asyncio.run(closed_loop(base, 4, 3, [REVIEW] * 64))
    statuses = asyncio.run(closed_loop(base, 64, 4, [REVIEW]))
    assert len(statuses) >= 64 and set(statuses) == {200}, {s: statuses.count(s) for s in set(statuses)}


def test_a_request_over_the_character_limit_is_413_naming_it(server):
    base, _, _ = server
    r = httpx.post(f"{base}/pos-tag", json={"texts": [chinese_text(9_000)] * 2}, timeout=30)
    assert r.status_code == 413 and "SENPOS_MAX_REQUEST_CHARS" in r.json()["error"] and "16000" in r.json()["error"]
    r = httpx.post(f"{base}/sentiment", json={"texts": ["word " * 10_000] * 5}, timeout=30)
    assert r.status_code == 413 and "200000" in r.json()["error"]


def test_small_requests_are_not_held_up_while_maximal_requests_run(server):
    """Each small request waits for a share of the model, never for the maximal requests to finish: every small
    request sent while they run is answered while they still run (but the one their end may overtake). Read from
    the order of events, not from a clock, so a slow machine changes nothing; a queue served first come, first
    served answers the first small request only after both maximal ones, and fails."""
    base, _, _ = server
    big = chinese_text(MAXIMAL_POS)

    async def go():
        async with httpx.AsyncClient(base_url=base, timeout=60) as c:
            heavy = [asyncio.ensure_future(c.post("/pos-tag", json={"texts": [big]})) for _ in range(4)]
            await asyncio.sleep(0.1)  # being tokenised or queued
            small = []
            for path, body in [("/sentiment", {"texts": ["Fine."]}), ("/pos-tag", {"texts": ["我们热爱和平。"]})] * 3:
                sent_while_running = not all(h.done() for h in heavy)
                status = (await c.post(path, json=body)).status_code
                small.append((status, sent_while_running, not all(h.done() for h in heavy)))
            return [(await h).status_code for h in heavy], small

    heavy, small = asyncio.run(go())
    assert set(heavy) <= {200, 503} and 200 in heavy, heavy  # the door may turn the last ones away on a slow machine
    assert all(status == 200 for status, *_ in small)
    during = [answered_while_running for _, sent_while_running, answered_while_running in small if sent_while_running]
    assert len(during) >= 2, "the maximal requests were over before the small ones were sent"
    assert all(during[:-1]), small


def _metric(base: str, name: str, endpoint: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    return sum(float(v) for v in re.findall(rf'^{name}{{[^}}]*endpoint="{endpoint}"[^}}]*}} ([0-9.e+]+)$', text, re.M))


@pytest.mark.parametrize("layout", ["single", "split"])
def test_a_client_that_goes_away_has_its_work_dropped(layout):
    """A large request whose client leaves once a tenth of its work has run costs the model much less than
    serving it: units still queued are dropped. Progress is read from the model's row counter, not timed; the
    request is four times the default maximum, in batches of 4, so the tenth the test waits for leaves a wide
    margin however late its own reads of /metrics are scheduled on a loaded machine."""
    env = {"SENPOS_LAYOUT": layout, "SENPOS_MAX_BATCH_SIZE": "4", "SENPOS_MAX_REQUEST_CHARS": f"pos={LEAVING_POS}"}
    with server_process(env) as (base, _):
        _client_goes_away(base)


LEAVING_POS = 4 * MAXIMAL_POS


def _client_goes_away(base: str) -> None:
    body = json.dumps({"texts": [chinese_text(LEAVING_POS)]}).encode()
    rows = lambda: _metric(base, "senpos_batch_size_sum", "pos_tag")  # noqa: E731  (model rows run so far)
    before = rows()
    assert httpx.post(f"{base}/pos-tag", content=body, headers={"content-type": "application/json"},
                      timeout=120).status_code == 200
    full = rows() - before
    host, port = base.removeprefix("http://").split(":")
    for _ in range(2):
        before = rows()
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /pos-tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            deadline = time.monotonic() + 120
            while rows() - before < 0.1 * full:  # queued and running
                assert time.monotonic() < deadline, "the request never ran"
                time.sleep(0.02)
        settled = _settled(rows)
        assert settled - before < 0.9 * full, (settled - before, full)  # serving it would be 1 x full
    assert httpx.post(f"{base}/pos-tag", json={"texts": ["我们热爱和平。"]}, timeout=30).status_code == 200


def _settled(read: Callable[[], float], quiet_s: float = 0.5, limit_s: float = 60) -> float:
    """`read()` once it has not changed for `quiet_s` seconds."""
    deadline, last, since = time.monotonic() + limit_s, read(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "still changing"
        time.sleep(0.05)
        now = read()
        if now != last:
            last, since = now, time.monotonic()
    return last


def _rss_mb(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
    return total / 1024


def _workers(proc: subprocess.Popen) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_two_connections_carrying_large_requests_keep_both_workers_busy(server):
    """Connections are rebalanced by the work they bring, not only by their request count: two keep-alive
    connections sending large requests end up on both API workers, whichever worker accepted them first."""
    base, proc, layout = server
    if layout == "split":
        pytest.skip("split: the model work runs in one model process; worker balance matters in single")
    workers = _workers(proc)
    before = {p: _cpu_s(p) for p in workers}
    deadline, texts = time.monotonic() + 10, [REVIEW * 3] * 64

    def connection() -> None:
        with httpx.Client(base_url=base, timeout=60) as c:  # one keep-alive connection, reopened when asked
            while time.monotonic() < deadline:
                assert c.post("/sentiment", json={"texts": texts}).status_code == 200

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: connection(), range(2)))
    used = {p: _cpu_s(p) - before[p] for p in workers}
    assert min(used.values()) >= 0.25 * sum(used.values()), used


def test_memory_returns_after_maximal_requests(server):
    base, proc, _ = server
    big_zh, big_en = chinese_text(MAXIMAL_POS), ["A long review. " * 300] * 40
    with httpx.Client(base_url=base, timeout=60) as c:
        for _ in range(2):  # warm: the allocator's pools for these shapes exist
            c.post("/pos-tag", json={"texts": [big_zh]})
            c.post("/sentiment", json={"texts": big_en})
        time.sleep(1)
        workers = _workers(proc)
        before = _rss_mb(workers)
        for _ in range(4):
            assert c.post("/pos-tag", json={"texts": [big_zh]}).status_code == 200
            assert c.post("/sentiment", json={"texts": big_en}).status_code == 200
        time.sleep(1)
        after = _rss_mb(workers)
    assert after <= 1.2 * before, (before, after)


def test_answers_equal_the_predictors_in_process(server):
    """Scores within 1e-5 and tags equal to the in-process predictors, so both layouts answer alike."""
    base, _, _ = server
    english = SentimentPredictor(REPO / "models" / "sentiment", threads=1)
    chinese = PosTagger(REPO / "models" / "pos", threads=1)
    reviews = [REVIEW, "Awful.", "Not bad at all, really. " * 50, "I loved it! " * 400]
    texts = ["江泽民发表1998年新年讲话。", chinese_text(3_000), ["我们", "热爱", "和平"]]
    with httpx.Client(base_url=base, timeout=60) as c:
        got = [a["score"] for a in c.post("/sentiment", json={"texts": reviews}).json()]
        tagged = c.post("/pos-tag", json={"texts": texts}).json()
    assert np.allclose(got, english.predict(reviews), atol=1e-5)
    for answer, want in zip(tagged, chinese.tag(texts), strict=True):
        assert answer["words"] == want.words and answer["tags"] == want.tags
        assert answer["upos"] == want.upos() and answer["offsets"] == [list(o) for o in want.offsets]


def test_api_and_model_servers_apart_over_tcp(tmp_path):
    """The shape across pods (deploy/k8s/senpos-gpu.yaml): a model server alone on TCP, an API server pointed at it."""
    # Both of the model server's ports stay reserved until it has stopped: no other pick (the API server's
    # included) can get them before it binds them (bench/harness.py, free_port).
    with reserved_port() as model_port, reserved_port() as http_port:
        address = f"tcp://127.0.0.1:{model_port}"
        env = {**os.environ, "SENPOS_MODEL_ADDRESS": address, "BENTOML_HOME": str(tmp_path / "models-home")}
        with open(tmp_path / "models.log", "w") as log:
            models = subprocess.Popen([BENTOML, "serve", "service.service:SenposModels", "--port", str(http_port)],
                                      cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            with running_server({"SENPOS_LAYOUT": "split", "SENPOS_MODEL_ADDRESS": address}) as base:
                r = httpx.post(f"{base}/sentiment", json={"texts": ["A wonderful film.", "Dreadful."]}, timeout=30)
                assert [a["label"] for a in r.json()] == ["positive", "negative"]
                r = httpx.post(f"{base}/pos-tag", json={"texts": [["我们", "热爱", "和平"]]}, timeout=30)
                assert r.json()[0]["tags"] == ["r", "v", "n"]
        finally:
            os.killpg(models.pid, signal.SIGTERM)
            models.wait(timeout=30)


def test_a_killed_model_process_is_503_at_once_then_restarted(server):
    base, proc, layout = server
    if layout != "split":
        pytest.skip("only the split layout has a model process")
    out = subprocess.run(["pgrep", "-f", "--", "--service-name SenposModels"], capture_output=True, text=True).stdout
    (pid,) = [int(p) for p in out.split() if int(p) in _workers(proc)]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    r = httpx.post(f"{base}/sentiment", json={"texts": ["Fine."]}, timeout=30)
    # At once: a 503, not a request held until the model process is back (that would answer 200) or timed out.
    assert r.status_code == 503 and r.headers["retry-after"]
    deadline = time.monotonic() + 120  # bentoml serve starts a new model process; the workers reconnect
    while httpx.post(f"{base}/sentiment", json={"texts": ["Fine."]}, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover"
        time.sleep(1)
    assert httpx.get(f"{base}/readyz").status_code == 200
