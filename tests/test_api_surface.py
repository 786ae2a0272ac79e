"""What a user of the HTTP API sees besides the answers: /info, the OpenAPI document, request ids, UTF-8 and
gzip, API keys and CORS. Against the real server (bench/harness.py)."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest

import senpos
from bench.harness import running_server
from senpos.identity import model_version
from service.settings import REPO

POS = "江泽民发表1998年新年讲话。"


@pytest.fixture(scope="module")
def client(server_url):
    with httpx.Client(base_url=server_url, timeout=60) as c:
        yield c


def test_info_names_the_models_that_answer(client):
    info = client.get("/info").json()
    assert info["version"] == senpos.__version__
    for model, folder in (("sentiment", "sentiment"), ("pos", "pos")):
        entry = info["models"][model]
        sha = hashlib.sha256((REPO / "models" / folder / "model.onnx").read_bytes()).hexdigest()
        assert entry["sha256"] == sha and entry["version"] == model_version(REPO / "models" / folder)
        assert entry["name"] == f"senpos-{model}" and entry["provider"] == "CPUExecutionProvider"
        assert entry["metrics"] and all(0.5 < v <= 1 for v in entry["metrics"].values())
    card = json.loads((REPO / "models" / "sentiment" / "evaluation.json").read_text())
    assert info["models"]["sentiment"]["metrics"]["report_accuracy"] == round(card["report"]["accuracy"], 4)
    metrics = client.get("/metrics").text
    for model in ("sentiment", "pos"):
        assert f'senpos_model_info{{model="{model}",name="senpos-{model}"' in metrics
        assert f'sha256="{info["models"][model]["sha256"]}"' in metrics


def test_openapi_describes_senpos(client):
    for path in ("/docs.json", "/docs/docs.json"):
        spec = client.get(path).json()
        assert spec["info"]["title"] == "senpos" and spec["info"]["version"] == senpos.__version__
        assert "slack" not in json.dumps(spec["info"]).lower() and "SENPOS_MAX_REQUEST_CHARS" not in spec["info"]
        for route in ("/sentiment", "/pos-tag"):
            responses = spec["paths"][route]["post"]["responses"]
            assert set(responses) == {"200", "400", "401", "413", "415", "429", "503", "504"}
            assert responses["200"]["content"]["application/json"]["schema"]["items"]["$ref"].startswith(
                "#/components/schemas/")
        schemas = spec["components"]["schemas"]
        assert schemas["SentimentResult"]["properties"]["label"]["enum"] == ["positive", "negative"]
        assert set(schemas["PosResult"]["required"]) == {"words", "tags", "upos", "offsets"}
        assert "prefixItems" not in json.dumps(spec)  # JSON Schema 2020-12 only: OpenAPI 3.0 tools reject it
        assert set(schemas["Error"]["required"]) == {"error", "request_id"}
        assert spec["paths"]["/info"]["get"]["responses"]["200"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Info"}
        assert spec["servers"] == [{"url": "/"}]  # "Try it out" on /docs/ calls /sentiment, not /docs/sentiment
        assert "securitySchemes" not in spec["components"]  # no key here


def test_chinese_comes_back_as_utf8_and_large_answers_gzipped(client):
    r = client.post("/pos-tag", json={"texts": [POS]})
    assert "江".encode() in r.content and b"\\u" not in r.content
    big = {"texts": [POS * 40] * 4}
    plain = client.post("/pos-tag", json=big, headers={"accept-encoding": "identity"})
    packed = client.post("/pos-tag", json=big, headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in plain.headers and packed.headers["content-encoding"] == "gzip"
    assert packed.json() == plain.json()  # httpx inflates it
    assert int(packed.headers["content-length"]) < len(plain.content) / 4


def test_every_answer_carries_a_request_id_and_errors_quote_it(client):
    ok = client.post("/sentiment", json={"texts": ["fine"]}, headers={"x-request-id": "trace-42"})
    assert ok.headers["x-request-id"] == "trace-42"
    bad = client.post("/sentiment", json={"texts": [""]}, headers={"x-request-id": "bad id with spaces"})
    rid = bad.headers["x-request-id"]
    assert bad.status_code == 400 and rid != "bad id with spaces" and len(rid) >= 8
    assert bad.json()["request_id"] == rid and "empty" in json.dumps(bad.json()["detail"])
    wrong_type = client.post("/pos-tag", content=b"x", headers={"content-type": "text/plain"})
    assert wrong_type.status_code == 415 and wrong_type.json()["request_id"] == wrong_type.headers["x-request-id"]


@pytest.fixture(scope="module")
def keyed():
    env = {"SENPOS_API_KEY": "key-one, key-two", "SENPOS_CORS_ORIGINS": "http://page.example",
           "SENPOS_API_WORKERS": "1"}
    with running_server(env) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def test_api_keys_guard_the_api_and_leave_probes_open(keyed):
    for route, body in (("/sentiment", {"texts": ["good"]}), ("/pos-tag", {"texts": [POS]})):
        missing = keyed.post(route, json=body)
        assert missing.status_code == 401 and "Authorization: Bearer" in missing.json()["error"]
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["request_id"] == missing.headers["x-request-id"]
        wrong = keyed.post(route, json=body, headers={"authorization": "Bearer key-three"})
        assert wrong.status_code == 401 and "key-three" not in wrong.text
        for key in ("key-one", "key-two"):
            assert keyed.post(route, json=body, headers={"authorization": f"Bearer {key}"}).status_code == 200
    assert keyed.get("/info").status_code == 401
    assert keyed.get("/info", headers={"authorization": "bearer key-two"}).json()["version"] == senpos.__version__
    oip = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["good"]}]}
    for route in ("/v2", "/v2/models/sentiment", "/v2/models/pos/ready"):
        assert keyed.get(route).status_code == 401, route
    assert keyed.post("/v2/models/sentiment/infer", json=oip).status_code == 401
    assert keyed.post("/v2/models/sentiment/infer", json=oip, headers={"authorization": "Bearer key-one"}
                      ).status_code == 200
    for probe in ("/livez", "/readyz", "/metrics", "/docs.json", "/v2/health/live", "/v2/health/ready"):
        assert keyed.get(probe).status_code == 200, probe


def test_with_keys_the_document_declares_bearer_auth(keyed):
    """The Swagger UI's Authorize dialog and generated clients learn that the API needs a key, and where."""
    spec = keyed.get("/docs.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "a key of SENPOS_API_KEY"}
    for path, method in (("/sentiment", "post"), ("/pos-tag", "post"), ("/info", "get")):
        assert spec["paths"][path][method]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/livez"]["get"]


def test_cors_lets_the_named_origin_call(keyed):
    preflight = keyed.options("/sentiment", headers={"origin": "http://page.example",
                                                     "access-control-request-method": "POST",
                                                     "access-control-request-headers": "authorization, content-type"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "http://page.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"]
    r = keyed.post("/sentiment", json={"texts": ["good"]},
                   headers={"origin": "http://page.example", "authorization": "Bearer key-one"})
    assert r.headers["access-control-allow-origin"] == "http://page.example"
    assert "x-request-id" in r.headers["access-control-expose-headers"]
    refused = keyed.options("/sentiment", headers={"origin": "http://elsewhere.example",
                                                   "access-control-request-method": "POST"})
    assert refused.status_code == 403 and "access-control-allow-origin" not in refused.headers



def test_the_sdk_sends_its_key_and_reports_the_servers_request_id(keyed):
    from senpos_client import AuthenticationError, Client, ValidationError

    url = str(keyed.base_url).rstrip("/")
    with Client(url, api_key="key-two") as client:
        assert client.sentiment(["A wonderful, moving film."])[0].label == "positive"
        info = client.info()
        assert info.version == senpos.__version__ and set(info.models) == {"sentiment", "pos"}
        assert info.models["pos"].version == model_version(REPO / "models" / "pos")
        with pytest.raises(ValidationError) as refused:
            client.sentiment(["   "])
        assert refused.value.request_id and len(refused.value.request_id) >= 8
    with Client(url, api_key="") as client, pytest.raises(AuthenticationError) as no_key:
        client.sentiment(["fine"])
    assert no_key.value.status == 401 and no_key.value.request_id
    assert "SENPOS_API_KEY" in str(no_key.value)

    async def info_async():
        from senpos_client import AsyncClient

        async with AsyncClient(url, api_key="key-one") as client:
            return await client.info()

    assert asyncio.run(info_async()).models["sentiment"].provider == "CPUExecutionProvider"
