"""Load shedding over HTTP: a server with a tiny queue budget refuses what it cannot serve in time, at once,
with 503, Retry-After and a message; serves the rest; and is fine afterwards."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from bench.harness import running_server

LONG = "A long, careful and mostly admiring review of a film that runs too long. " * 40
ENV = {"SENPOS_API_WORKERS": "1", "SENPOS_MAX_QUEUE_MS": "1", "SENPOS_KEEPALIVE_REQUESTS": "1"}


@pytest.fixture(scope="module")
def base():
    with running_server(ENV) as url:
        yield url


def test_overload_is_refused_fast_with_a_reason(base):
    first = httpx.post(f"{base}/sentiment", json={"texts": [LONG]}, timeout=30)  # the batcher measures the model
    assert first.status_code == 200
    assert first.headers["connection"] == "close"  # SENPOS_KEEPALIVE_REQUESTS=1: every answer asks to reconnect

    async def burst():
        async with httpx.AsyncClient(base_url=base, timeout=30) as c:
            return await asyncio.gather(*(c.post("/sentiment", json={"texts": [LONG]}) for _ in range(48)))

    answers = asyncio.run(burst())
    statuses = {r.status_code for r in answers}
    assert statuses == {200, 503}, statuses
    refused = [r for r in answers if r.status_code == 503]
    assert all(r.headers["retry-after"] == "1" for r in refused)
    assert all("overloaded" in r.json()["error"] and "SENPOS_MAX_QUEUE_MS" in r.json()["error"] for r in refused)

    after = httpx.post(f"{base}/sentiment", json={"texts": ["Back to normal."]}, timeout=30)
    assert after.status_code == 200
    metrics = httpx.get(f"{base}/metrics").text
    shed = [line for line in metrics.splitlines() if line.startswith('senpos_shed_requests_total{endpoint="sentiment"')]
    assert shed and float(shed[0].rsplit(" ", 1)[1]) >= len(refused)
    # Refused in front of BentoML's own middleware (service.py: _to_asgi_shedding_first), so its request metrics
    # never saw them: the cheapest refusal there is.
    bentoml_503 = [line for line in metrics.splitlines()
                   if line.startswith("bentoml_service_request_total") and 'http_response_code="503"' in line]
    assert bentoml_503 == [], bentoml_503
