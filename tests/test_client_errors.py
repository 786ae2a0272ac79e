"""The client's settings and errors against a real loopback HTTP server that answers the way senpos's error design
says (API key check, `x-request-id`, `{"error", "request_id"}` bodies), and whose answers a test can choose."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest
from senpos_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    NotFoundError,
    SenposError,
    ServerError,
    ServiceUnavailable,
    Timeout,
    ValidationError,
)
from senpos_client._core import DEFAULT_TIMEOUT

from .loopback import Answer, Seen, error, loopback

KEY = "s3cret-Key_42"
HOLD_S = 30.0  # how long the server holds a "hold" answer: far longer than any client here waits, far below 60 s
WRONG_KEY = "wr0ng-key-777"
_ids = itertools.count(1)


def senpos_like(seen: Seen) -> Answer:
    """Needs `Bearer KEY`; a text names the answer wanted ("413", "500", "503", "hold", "bad", ...)."""
    request_id = seen.headers.get("x-request-id") or f"req-{next(_ids)}"
    if seen.path == "/readyz":
        return Answer(200, {"status": "ready"})
    if seen.headers.get("authorization") != f"Bearer {KEY}":
        # Echoes what it got, as a careless proxy might, so the tests see the client keep the key out anyway.
        return error(401, f"invalid API key: {seen.headers.get('authorization')}", request_id,
                     **{"www-authenticate": "Bearer"})
    if seen.path not in ("/sentiment", "/pos-tag"):
        return error(404, "not found", request_id)
    first = seen.body["texts"][0] if isinstance(seen.body["texts"][0], str) else ""
    if first in ("400", "413", "500", "503"):
        return error(int(first), f"refused with {first}", request_id, **{"retry-after": "0"})
    if first == "id in body only":
        return Answer(400, {"error": "refused", "request_id": "body-id"})
    if first == "neutral":  # a label the client does not know: answered as is
        return Answer(200, [{"label": "neutral", "score": 0.5}])
    if first == "bad":
        return Answer(400, {"error": "bad text"}, hold_s=0.3)
    one = {"label": "positive", "score": 0.9} if seen.path == "/sentiment" else \
        {"words": ["x"], "tags": ["n"], "offsets": [[0, 1]]}
    answer = [one for _ in seen.body["texts"]]
    return Answer(200, answer, {"x-request-id": request_id}, hold_s=HOLD_S if first.startswith("hold") else 0.0)


@pytest.fixture
def server():
    with loopback(senpos_like) as lb:
        yield lb


pytestmark = pytest.mark.usefixtures("no_client_env")


def test_a_missing_or_wrong_key_is_an_authentication_error_that_never_shows_the_key(server):
    with Client(server.url) as client, pytest.raises(AuthenticationError) as missing:
        client.sentiment(["x"])
    assert "SENPOS_API_KEY" in str(missing.value) and "api_key" in str(missing.value)
    assert server.seen[-1].headers.get("authorization") is None

    with Client(server.url, api_key=WRONG_KEY, retries=0) as client:
        with pytest.raises(AuthenticationError) as wrong:
            client.sentiment(["x"])
        shown = [str(wrong.value), repr(wrong.value), repr(wrong.value.args), repr(client), repr(client._config)]
    assert server.seen[-1].headers["authorization"] == f"Bearer {WRONG_KEY}"
    assert not any(WRONG_KEY in text for text in shown), shown
    error_ = wrong.value
    assert isinstance(error_, SenposError) and not isinstance(error_, ValidationError)
    assert error_.status == 401 and "SENPOS_API_KEY" in str(error_) and "api_key" in str(error_)
    assert error_.request_id == server.seen[-1].answer.headers["x-request-id"] and error_.request_id in str(error_)

    with Client(server.url, api_key=KEY) as client:
        assert client.sentiment(["x"])[0].label == "positive"
    assert server.seen[-1].headers["authorization"] == f"Bearer {KEY}"


def test_url_and_key_default_to_the_environment(server, monkeypatch):
    monkeypatch.setenv("SENPOS_URL", server.url + "/")
    monkeypatch.setenv("SENPOS_API_KEY", f" {KEY} ,another-key")  # the server's list form: the first key is used
    with Client() as client:
        assert client.url == server.url and client.sentiment(["x"])[0].score == 0.9
    assert server.seen[-1].headers["authorization"] == f"Bearer {KEY}"

    async def go():
        async with AsyncClient() as client:
            return await client.sentiment(["y"])

    assert asyncio.run(go())[0].label == "positive" and server.seen[-1].body == {"texts": ["y"]}
    with Client(api_key="") as client, pytest.raises(AuthenticationError, match="set SENPOS_API_KEY"):
        client.sentiment(["x"])  # an empty key opts out of the environment's


def test_statuses_are_told_apart_and_carry_the_request_id(server):
    with Client(server.url + "/v2", api_key=KEY) as client, pytest.raises(NotFoundError) as not_found:
        client.sentiment(["x"])
    assert not isinstance(not_found.value, ValidationError) and not_found.value.status == 404
    assert "senpos server" in str(not_found.value)
    assert not_found.value.request_id == server.seen[-1].answer.headers["x-request-id"]

    with Client(server.url, api_key=KEY, retries=1, backoff=0.01) as client:
        for text, kind in (("400", ValidationError), ("413", ValidationError), ("500", ServerError)):
            with pytest.raises(kind) as info:
                client.sentiment([text])
            assert info.value.status == int(text) and f"refused with {text}" in str(info.value)
            assert info.value.request_id == server.seen[-1].answer.headers["x-request-id"]
            assert info.value.request_id in str(info.value)
        with pytest.raises(ServiceUnavailable) as unavailable:
            client.sentiment(["503"])
        assert unavailable.value.attempts == 2 and unavailable.value.last_status == 503
        assert unavailable.value.request_id == server.seen[-1].answer.headers["x-request-id"]
        with pytest.raises(ValidationError) as body_only:
            client.sentiment(["id in body only"])
        assert body_only.value.request_id == "body-id"


def test_own_headers_go_with_every_request_and_the_server_echo_is_kept(server):
    headers = {"X-Tenant": "t1", "x-request-id": "mine-0001"}
    with Client(server.url, api_key=KEY, headers=headers) as client:
        client.sentiment(["x"])
        client.pos_tag(["x"])
        with pytest.raises(ValidationError) as info:
            client.sentiment(["400"])
    assert info.value.request_id == "mine-0001"
    for seen in server.seen:
        assert seen.headers["x-tenant"] == "t1" and seen.headers["user-agent"].startswith("senpos-client/")


def test_async_client_cancels_the_other_chunks_when_one_fails(server):
    """The failure surfaces without waiting for the chunk in flight, which the client abandons itself (the server
    sees it hang up while the client is still open: had the client waited, the server would have answered it)."""
    texts = ["bad", "hold 1", "hold 2", "hold 3"]  # one chunk each; "bad" is refused after 0.3 s

    async def go():
        async with AsyncClient(server.url, api_key=KEY, max_items=1, concurrency=2) as client:
            with pytest.raises(ValidationError, match="bad text"):
                await client.sentiment(texts)
            deadline = asyncio.get_running_loop().time() + HOLD_S  # the server answers "hold 1" by then
            while not server.hung_up and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.5)  # the loop runs on: chunks left running or waiting would go out now

    asyncio.run(go())
    assert [s.body["texts"][0] for s in server.seen] in (["bad", "hold 1"], ["hold 1", "bad"])
    assert [s.body["texts"][0] for s in server.hung_up] == ["hold 1"]  # the request in flight was abandoned


def test_timeout_takes_an_httpx_timeout_and_respects_a_given_client(server):
    # The server answers "hold" after HOLD_S, within the default timeout: a Timeout means the given one applied.
    assert HOLD_S < DEFAULT_TIMEOUT
    with Client(server.url, api_key=KEY, timeout=httpx.Timeout(0.3)) as client, pytest.raises(Timeout):
        client.sentiment(["hold"])

    with httpx.Client(timeout=0.3) as own:
        with Client(server.url, api_key=KEY, http_client=own) as client, pytest.raises(Timeout):
            client.sentiment(["hold"])  # no timeout given: the http_client's own applies
        assert not own.is_closed  # the caller's client stays the caller's
    with httpx.Client(timeout=30) as own, Client(server.url, api_key=KEY, http_client=own,
                                                 timeout=httpx.Timeout(0.3)) as client, pytest.raises(Timeout):
        client.sentiment(["hold"])  # a timeout given with it wins


@pytest.mark.parametrize("url", ["localhost:3000", "http://", "ftp://host", "http://exa mple", "http://h:99999",
                                 "http://h:port", ""])
def test_a_malformed_url_is_refused_at_once(url, monkeypatch):
    with pytest.raises(ValueError, match="not a usable senpos URL"):
        Client(url)
    monkeypatch.setenv("SENPOS_URL", url or " ")
    with pytest.raises(ValueError, match="not a usable senpos URL"):
        AsyncClient()


def test_bad_options_are_refused_without_showing_the_key():
    with pytest.raises(ValueError) as info:
        Client("http://127.0.0.1:9", api_key="abc-secret\n")
    assert "abc-secret" not in str(info.value)
    with pytest.raises(TypeError, match="httpx.Client"):
        Client("http://127.0.0.1:9", http_client=httpx.AsyncClient())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_items"):
        Client("http://127.0.0.1:9", max_items=0)
    with pytest.raises(ValueError, match="concurrency"):
        AsyncClient("http://127.0.0.1:9", concurrency=0)


def test_empty_lists_send_nothing_and_unknown_labels_are_refused(server):
    async def go():
        async with AsyncClient(server.url, api_key=KEY) as client:
            return await client.sentiment([]), await client.pos_tag([])

    with Client(server.url, api_key=KEY) as client:
        assert client.sentiment([]) == [] and client.pos_tag([]) == []
        with pytest.raises(ServerError, match="label"):
            client.sentiment(["neutral"])
    assert asyncio.run(go()) == ([], []) and len(server.seen) == 1
