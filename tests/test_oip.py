"""The Open Inference Protocol (KServe V2) over REST, driven by Triton's own client (`tritonclient.http`, with its
default binary tensors and with JSON ones) and by raw HTTP for every error, against the real server in both
layouts: answers equal the native endpoints'."""

from __future__ import annotations

import json
import struct
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import SERVER_LIMITS

REVIEWS = ["A warm, funny and beautifully acted film.", "Dull, slow and far too long.", "Not bad at all."]
CHINESE = ["江泽民发表1998年新年讲话。", "我爱北京天安门", "今天天气很好，我们去公园散步吧！"]
MAX_ITEMS = int(SERVER_LIMITS["SENPOS_MAX_ITEMS"])
MAX_TEXT = int(SERVER_LIMITS["SENPOS_MAX_TEXT_CHARS"])


@pytest.fixture(scope="module")
def http(server_url):
    with httpx.Client(base_url=server_url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def client(server_url):
    c = triton.InferenceServerClient(urlsplit(server_url).netloc, network_timeout=60)
    yield c
    c.close()


def texts_input(texts: list[str], binary: bool = True, shape: tuple[int, ...] | None = None) -> triton.InferInput:
    array = np.array([t.encode() for t in texts], dtype=np.object_).reshape(shape or (len(texts),))
    tensor = triton.InferInput("text", list(array.shape), "BYTES")
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


def test_server_and_model_metadata_and_health(client, http):
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "senpos" and "binary_tensor_data" in server["extensions"]
    versions = {m: http.get("/info").json()["models"][m]["version"] for m in ("sentiment", "pos")}
    for model, outputs in (("sentiment", {"score": "FP32", "label": "BYTES"}), ("pos", {"result": "BYTES"})):
        meta = client.get_model_metadata(model)
        assert meta["versions"] == [versions[model]]
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
        assert {o["name"]: o["datatype"] for o in meta["outputs"]} == outputs
        assert client.get_model_metadata(model, versions[model]) == meta
        assert client.is_model_ready(model) and client.is_model_ready(model, versions[model])
        assert not client.is_model_ready(model, "0")


def test_sentiment_with_default_binary_tensors_equals_the_native_answer(client, http):
    native = http.post("/sentiment", json={"texts": REVIEWS}).json()
    result = client.infer("sentiment", [texts_input(REVIEWS)])
    assert result.get_response()["model_name"] == "sentiment"
    scores, labels = result.as_numpy("score"), result.as_numpy("label")
    assert scores.dtype == np.float32 and scores.shape == (len(REVIEWS),)
    np.testing.assert_allclose(scores, [n["score"] for n in native], atol=1e-5)
    assert [lab.decode() for lab in labels] == [n["label"] for n in native]


def test_sentiment_with_json_tensors_and_an_n_by_1_shape(client, http):
    native = http.post("/sentiment", json={"texts": REVIEWS}).json()
    outputs = [triton.InferRequestedOutput("score", binary_data=False),
               triton.InferRequestedOutput("label", binary_data=False)]
    result = client.infer("sentiment", [texts_input(REVIEWS, binary=False, shape=(len(REVIEWS), 1))],
                          outputs=outputs, request_id="r-17")
    answer = result.get_response()
    assert answer["id"] == "r-17" and all("data" in o for o in answer["outputs"])
    assert result.as_numpy("score").shape == (len(REVIEWS), 1)
    np.testing.assert_allclose(result.as_numpy("score").ravel(), [n["score"] for n in native], atol=1e-5)
    only_label = client.infer("sentiment", [texts_input(REVIEWS)], outputs=[triton.InferRequestedOutput("label")])
    assert [o["name"] for o in only_label.get_response()["outputs"]] == ["label"]


@pytest.mark.parametrize("binary", [True, False])
def test_pos_results_are_the_native_answers(client, http, binary):
    native = http.post("/pos-tag", json={"texts": CHINESE}).json()
    result = client.infer("pos", [texts_input(CHINESE, binary=binary)],
                          outputs=[triton.InferRequestedOutput("result", binary_data=binary)])
    assert [json.loads(r) for r in result.as_numpy("result")] == native


def test_a_client_error_reaches_tritonclient_as_its_exception(client):
    with pytest.raises(InferenceServerException) as caught:
        client.infer("sentiment", [texts_input([" "])])
    assert caught.value.status() == "400" and "text[0]" in caught.value.message()
    with pytest.raises(InferenceServerException) as caught:
        client.infer("sentiment-large", [texts_input(REVIEWS)])
    assert caught.value.status() == "404"


def body(inputs: list[dict], **extra) -> dict:
    return {"inputs": inputs, **extra}


def text_tensor(data, shape=None, **changes) -> dict:
    return {"name": "text", "datatype": "BYTES", "shape": shape if shape is not None else [len(data)], "data": data,
            **changes}


def binary_body(elements: list[bytes], shape: list[int] | None = None, size_delta: int = 0) -> tuple[bytes, dict]:
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    header = json.dumps(body([{"name": "text", "datatype": "BYTES", "shape": shape or [len(elements)],
                               "parameters": {"binary_data_size": len(raw) + size_delta}}])).encode()
    return header + raw, {"inference-header-content-length": str(len(header)),
                          "content-type": "application/octet-stream"}


@pytest.mark.parametrize(("path", "payload", "status", "needle"), [
    ("/v2/models/sentiment/infer", body([text_tensor(["good"], name="texts")]), 400, "unknown input 'texts'"),
    ("/v2/models/sentiment/infer", body([text_tensor(["good"], datatype="FP32")]), 400, "must be BYTES"),
    ("/v2/models/sentiment/infer", body([text_tensor(["good"], shape=[1, 2])]), 400, "shape [N] or [N, 1]"),
    ("/v2/models/sentiment/infer", body([text_tensor(["good", "bad"], shape=[3])]), 400, "its shape says 3"),
    ("/v2/models/sentiment/infer", body([text_tensor([1.5])]), 400, "must be a string"),
    ("/v2/models/sentiment/infer", body([]), 400, "exactly one input"),
    ("/v2/models/sentiment/infer", body([text_tensor(["good"])], outputs=[{"name": "logits"}]), 400,
     "unknown output 'logits'"),
    ("/v2/models/pos/infer", body([text_tensor(["\u3000"])]), 400, "text[0]"),
    ("/v2/models/sentiment/infer", body([text_tensor(["ok"] * (MAX_ITEMS + 1))]), 413, "SENPOS_MAX_ITEMS"),
    ("/v2/models/pos/infer", body([text_tensor(["好" * (MAX_TEXT + 1)])]), 413, "SENPOS_MAX_TEXT_CHARS"),
    ("/v2/models/pos/infer", body([text_tensor(["a" * MAX_TEXT] * 4)]), 413, "SENPOS_MAX_REQUEST_CHARS"),
    ("/v2/models/sentiment-large/infer", body([text_tensor(["good"])]), 404, "no such model"),
    ("/v2/models/sentiment/versions/1/infer", body([text_tensor(["good"])]), 404, "no such model or version"),
])
def test_every_error_is_the_protocols(http, path, payload, status, needle):
    answer = http.post(path, json=payload)
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["error"] and answer.json()["request_id"] == answer.headers["x-request-id"]


def test_binary_framing_errors_are_400(http):
    path = "/v2/models/sentiment/infer"
    for content, headers, needle in (
        (*binary_body([b"good", b"\xff\xfe"]), "not UTF-8"),
        (*binary_body([b"good"], shape=[2]), "holds 1 elements"),
        (*binary_body([b"good"], size_delta=3), "binary_data_size"),
        (b'{"inputs": [', {"inference-header-content-length": "99"}, "Inference-Header-Content-Length"),
        (b'{"inputs": [', {}, "not valid JSON"),
    ):
        answer = http.post(path, content=content, headers=headers)
        assert answer.status_code == 400 and needle in answer.json()["error"], (needle, answer.text)
    content, headers = binary_body([b"good"])
    assert http.post(path, content=content, headers={**headers, "content-encoding": "gzip"}).status_code == 415
    assert http.post("/sentiment", content=b"{}", headers={"content-type": "application/octet-stream"}
                     ).status_code == 415
    assert http.post(path, content=content, headers=headers).status_code == 200


def test_metrics_count_the_infer_paths_and_no_name_anyone_sends(http, client):
    def batches() -> float:
        lines = http.get("/metrics").text.splitlines()
        return sum(float(line.split()[-1]) for line in lines
                   if line.startswith("senpos_batch_size_count") and 'endpoint="sentiment"' in line)

    client.infer("sentiment", [texts_input(REVIEWS)])
    for path in ("/v2/models/nope/infer", "/v2/models/sentiment/versions/nope/infer", "/v2/models/nope"):
        http.post(path, json={})  # every label set the server will ever have for these
        http.get(path)
    before, counted = http.get("/metrics").text.splitlines(), batches()
    client.infer("sentiment", [texts_input(REVIEWS)])
    assert batches() > counted  # the model work went through senpos's own queue and its metrics
    metrics = http.get("/metrics").text
    assert 'endpoint="/v2/models/sentiment/infer"' in metrics
    for name in ("a", "b" * 40, "sentiment-large"):
        assert http.post(f"/v2/models/{name}/infer", json={}).status_code == 404
        assert http.post(f"/v2/models/sentiment/versions/{name}/infer", json={}).status_code == 404
    assert len(http.get("/metrics").text.splitlines()) == len(before)


def test_malformed_requests_are_4xx_never_5xx(http):
    """Seeded random damage to a valid request, JSON and binary: every answer is 200 or a 4xx with an error."""
    import random

    rng = random.Random(7)
    junk = [None, True, -1, 2**40, 1.5, "", "x", [], {}, [[["deep"]]], {"name": "text"}, ["a", 1], "\ud800"]
    valid = body([text_tensor(["good", "bad"])], outputs=[{"name": "score"}], parameters={"binary_data_output": True})
    statuses = set()
    for _ in range(150):
        payload = json.loads(json.dumps(valid))
        spot = rng.choice(["root", "inputs", "tensor", "outputs", "parameters"])
        value = rng.choice(junk)
        if spot == "root":
            payload = value if rng.random() < 0.5 else {**payload, rng.choice(["inputs", "outputs", "id"]): value}
        elif spot == "inputs":
            payload["inputs"] = value if rng.random() < 0.5 else [*payload["inputs"], value]
        elif spot == "tensor":
            payload["inputs"][0][rng.choice(["name", "datatype", "shape", "data", "parameters"])] = value
        elif spot == "outputs":
            payload["outputs"] = value if rng.random() < 0.5 else [value]
        else:
            payload["parameters"] = value if rng.random() < 0.5 else {"binary_data_output": value}
        content = json.dumps(payload).encode()
        headers = {"content-type": "application/json"}
        if rng.random() < 0.3:  # a binary framing with a header length anywhere in or past the body
            headers = {"content-type": "application/octet-stream",
                       "inference-header-content-length": str(rng.randint(0, len(content) + 5))}
            content += bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))
        answer = http.post("/v2/models/sentiment/infer", content=content, headers=headers)
        statuses.add(answer.status_code)
        assert answer.status_code == 200 or (400 <= answer.status_code < 500 and answer.json()["error"]), (
            payload, headers, answer.status_code, answer.text[:300])
    assert {200, 400} <= statuses  # some damage was harmless (an ignored field), most was not
