"""The OpenAPI document says exactly what the server accepts: schemathesis, every check, against the real server
(a short fixed-seed run; `make stress` runs a long one). Its settings are the repository's schemathesis.toml."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.harness import REPO, running_server

from .conftest import SERVER_LIMITS

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def schemathesis_command(base: str, examples: int, seed: int) -> list[str]:
    return [str(SCHEMATHESIS), "--config-file", str(REPO / "schemathesis.toml"), "run", f"{base}/docs.json",
            "--checks", "all", "--max-examples", str(examples), "--seed", str(seed), "--workers", "1"]


@pytest.fixture(scope="module")
def base():
    with running_server({**SERVER_LIMITS, "SENPOS_API_WORKERS": "1"}) as url:
        yield url


def test_the_document_states_the_rules_the_server_enforces(base):
    spec = httpx.get(f"{base}/docs.json").json()
    for route, chars in (("/sentiment", 5000), ("/pos-tag", 5000)):
        body = spec["paths"][route]["post"]["requestBody"]
        assert body["required"] is True
        texts = body["content"]["application/json"]["schema"]["properties"]["texts"]
        assert (texts["minItems"], texts["maxItems"]) == (1, 16)
        assert "SENPOS_MAX_REQUEST_CHARS" in texts["description"]
        item = texts["items"]["anyOf"][0] if route == "/pos-tag" else texts["items"]
        assert item["maxLength"] == chars and item["minLength"] == 1
        pattern = re.compile(item["pattern"])
        assert not pattern.search("\x1f \u3000\t") and pattern.search("\ufeff")  # the server's whitespace, exactly
    accepted = httpx.post(f"{base}/pos-tag", json={"texts": ["\ufeff我们", ["我们", "\ufeff"]]}, timeout=60)
    assert accepted.status_code == 200


def test_schemathesis_finds_nothing(base):
    proc = subprocess.run(schemathesis_command(base, 60, 20261207), capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    generated = re.search(r"(\d+) generated", proc.stdout)
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert generated and int(generated.group(1)) >= 200, proc.stdout[-2000:]
