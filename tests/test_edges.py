"""The edges a newcomer (and an attacker) hits, against the real server: what a client's mistake is answered with
and what it leaves in the log, unknown paths and /metrics, the OpenAPI UI's "Try it out" in a real browser."""

from __future__ import annotations

import json
import time
import uuid

import httpx
import pytest

from bench.harness import running_server, server_log

from .browser import CHROMIUM, launch

LIMITS = {"SENPOS_MAX_ITEMS": "16", "SENPOS_MAX_TEXT_CHARS": "5000", "SENPOS_MAX_BODY_BYTES": "200000",
          "SENPOS_MAX_REQUEST_CHARS": "sentiment=200000,pos=8000"}
MARKER = f"marker-{uuid.uuid4().hex}"  # request text that must never reach the log


@pytest.fixture(scope="module")
def base():
    with running_server({**LIMITS, "SENPOS_API_WORKERS": "1", "SENPOS_ACCESS_LOG": "1"}) as url:
        yield url


@pytest.fixture(scope="module")
def client(base):
    with httpx.Client(base_url=base, timeout=60) as c:
        yield c


def post(client, path: str, body: bytes) -> httpx.Response:
    return client.post(path, content=body, headers={"content-type": "application/json"})


BAD = [  # (path, body, status, how `error` starts: the whole of it but for the JSON parser's position)
    ("/sentiment", b'{"texts": ["' + MARKER.encode(), 400, "the body is not valid JSON: EOF while parsing a string"),
    ("/sentiment", b"", 400, 'texts: missing; the body must be a JSON object {"texts": [...]}'),
    ("/sentiment", b"[]", 400, 'the body must be a JSON object {"texts": [...]}'),
    ("/sentiment", json.dumps({"texts": MARKER}).encode(), 400, "texts: expected a list"),
    ("/sentiment", json.dumps({"texts": [MARKER, MARKER, 7]}).encode(), 400, "texts[2]: expected a string"),
    ("/sentiment", json.dumps({"texts": [MARKER, " \u3000"]}).encode(), 400, "texts[1]: text is empty or "
     "whitespace only"),
    ("/pos-tag", json.dumps({"texts": [MARKER, ["我们", 3]]}).encode(), 400, "texts[1]: expected a string or a "
     "list of strings"),
    ("/pos-tag", json.dumps({"texts": [[MARKER, "\x1f"]]}).encode(), 400, "texts[0]: word 1 is empty or "
     "whitespace only"),
    ("/pos-tag", json.dumps({"texts": [1, 2]}).encode(), 400, "texts[0]: expected a string or a list of strings "
     "(and 1 more problem, listed in detail)"),
]
TOO_LARGE = [  # (path, body, the setting the 413 must name)
    ("/sentiment", json.dumps({"texts": [MARKER] * 17}).encode(), "SENPOS_MAX_ITEMS"),
    ("/sentiment", json.dumps({"texts": [MARKER * 200]}).encode(), "SENPOS_MAX_TEXT_CHARS"),
    ("/pos-tag", json.dumps({"texts": [[MARKER] * 200]}).encode(), "SENPOS_MAX_TEXT_CHARS"),
    ("/pos-tag", json.dumps({"texts": [MARKER * 100] * 4}).encode(), "SENPOS_MAX_REQUEST_CHARS"),
    ("/sentiment", json.dumps({"texts": [MARKER * 100] * 100}).encode(), "SENPOS_MAX_BODY_BYTES"),
]


@pytest.mark.parametrize("path,body,status,error", BAD)
def test_a_400_names_the_field_and_the_item_in_one_sentence(client, path, body, status, error):
    r = post(client, path, body)
    assert r.status_code == status and r.json()["error"].startswith(error), r.text
    assert r.json()["request_id"] == r.headers["x-request-id"] and MARKER not in r.text


@pytest.mark.parametrize("path,body,setting", TOO_LARGE)
def test_every_size_limit_is_a_413_naming_its_setting(client, path, body, setting):
    r = post(client, path, body)
    assert r.status_code == 413 and setting in r.json()["error"], r.text


def test_client_mistakes_leave_no_traceback_and_no_request_text_in_the_log(base, client):
    answered = server_log(base).read_text(errors="replace").count("status=")  # by the tests before this one
    for path, body, *_ in BAD + TOO_LARGE:
        post(client, path, body)
    assert client.post("/sentiment", json={"texts": ["still fine"]}).status_code == 200
    deadline = time.monotonic() + 30  # the workers write the log: wait until every answer above is in it
    while (log := server_log(base).read_text(errors="replace")).count("status=") < answered + len(BAD + TOO_LARGE) + 1:
        assert time.monotonic() < deadline, "the access log missed answers"
        time.sleep(0.1)
    assert "Traceback" not in log and "[ERROR]" not in log
    assert MARKER not in log and "input_value" not in log
    assert "status=400" in log and "status=413" in log  # the access log saw them, without their text


@pytest.mark.parametrize("method,path,status", [("GET", "/no/such/path", 404), ("POST", "/sentimentz", 404),
                                                ("GET", "/static/nothing.js", 404), ("GET", "/sentiment", 405),
                                                ("DELETE", "/info", 405), ("PUT", "/pos-tag", 405)])
def test_404_and_405_are_json_errors_with_a_request_id(client, method, path, status):
    r = client.request(method, path)
    assert r.status_code == status and r.headers["content-type"] == "application/json"
    assert set(r.json()) == {"error", "request_id"} and r.json()["request_id"] == r.headers["x-request-id"]
    if status == 405:
        assert r.headers["allow"] and r.headers["allow"] in r.json()["error"]


def test_random_paths_do_not_grow_the_metrics(client):
    for path in ("/sentiment", "/info", "/docs", "/nope"):  # every label set the server will ever have
        client.get(path)
    before = client.get("/metrics").text.splitlines()
    for _ in range(100):
        assert client.get(f"/{uuid.uuid4().hex}/{uuid.uuid4().hex[:6]}").status_code == 404
    after = client.get("/metrics").text.splitlines()
    assert len(after) == len(before)
    assert not [line for line in after if "endpoint=\"/nope" in line or len(line) > 1000]


def test_the_docs_page_is_senpos_own_and_loads_nothing_from_elsewhere(client):
    page = client.get("/docs").text
    assert "<title>senpos</title>" in page and "googletagmanager" not in page and "https://www.google" not in page
    assert client.get("/docs/").text == page
    spec = client.get("/docs.json").json()
    assert spec["servers"] == [{"url": "/"}] and spec == client.get("/docs/docs.json").json()


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH: `make browser` installs Debian's chromium")
@pytest.mark.parametrize("docs", ["/docs", "/docs/"])
def test_try_it_out_in_the_docs_calls_the_api(base, docs):
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        tab = browser.new_page()
        elsewhere: list[str] = []
        tab.on("request", lambda r: r.url.startswith((base, "data:")) or elsewhere.append(r.url))
        tab.goto(base + docs)
        assert tab.title() == "senpos"
        tab.locator("#operations-Service_APIs-Senpos__sentiment .opblock-summary").click()
        tab.get_by_role("button", name="Try it out").click()
        tab.locator("#operations-Service_APIs-Senpos__sentiment textarea.body-param__text").fill(
            '{"texts": ["A wonderful, moving film."]}')
        with tab.expect_response(lambda r: r.request.method == "POST") as answer:
            tab.get_by_role("button", name="Execute").click()
        response = answer.value
        assert response.url == f"{base}/sentiment" and response.status == 200
        assert response.json()[0]["label"] == "positive"
        shown = tab.locator(".live-responses-table tbody")  # the answer, as the page shows it
        sync_api.expect(shown.locator(".response-col_status").first).to_contain_text("200")
        sync_api.expect(shown).to_contain_text('"label": "positive"')
        browser.close()
    assert not elsewhere, f"the docs page asked for something outside the server: {elsewhere}"
