from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from senpos.data_root import data_root

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = data_root()


@pytest.fixture(scope="session")
def reviews_jsonl() -> Path:
    return FIXTURES / "reviews.jsonl"


@pytest.fixture(scope="session")
def fixture_reviews(reviews_jsonl: Path) -> list[dict]:
    return [json.loads(line) for line in reviews_jsonl.read_text().splitlines()]


@pytest.fixture(scope="session")
def aclimdb_tree(tmp_path_factory: pytest.TempPathFactory, fixture_reviews: list[dict]) -> Path:
    """The fixture reviews laid out like the official aclImdb directory (train/{pos,neg,unsup})."""
    root = tmp_path_factory.mktemp("acl") / "aclImdb"
    for row in fixture_reviews:
        path = root / (row["id"] + ".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(row["text"], encoding="utf-8")
    (root / "train" / "unsup").mkdir()
    (root / "train" / "unsup" / "0_0.txt").write_text("An unlabelled review.", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def aclimdb_tarball(tmp_path_factory: pytest.TempPathFactory, aclimdb_tree: Path) -> Path:
    path = tmp_path_factory.mktemp("tar") / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(aclimdb_tree, arcname="aclImdb")
        info = tarfile.TarInfo("aclImdb/README")
        data = b"not a review"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


# The limits the shared test server runs with (small, so the limit tests stay fast).
SERVER_LIMITS = {"SENPOS_MAX_ITEMS": "16", "SENPOS_MAX_TEXT_CHARS": "5000", "SENPOS_MAX_BODY_BYTES": "200000"}


@pytest.fixture(scope="session", params=["single", "split"])
def server_url(request):
    """A real `bentoml serve` per layout (SENPOS_LAYOUT), shared by every HTTP test of the session."""
    from bench.harness import running_server

    with running_server({**SERVER_LIMITS, "SENPOS_LAYOUT": request.param}) as url:
        yield url


# The groups the tests fall in (the markers are registered in pyproject.toml; `make check` runs the unit group,
# `make test` all of them, `make test-container` the container checks, which need a Docker engine):
# - server: starts a real `bentoml serve` (bench/harness.py), or runs what does (the benchmark smoke runs);
# - slow: trains, builds or installs for more than a few seconds;
# - unit: the rest, in-process (stub servers from tests/loopback.py included).
SERVER_MODULES = {"test_api_surface", "test_bench_smoke", "test_bento", "test_oip", "test_overload", "test_page",
                  "test_service", "test_serving_core"}
STARTS_A_SERVER = {"running_server", "server_process", "started"}  # bench.harness's
# Each of these takes seconds (pytest --durations says which): training runs, export parity, the shipped taggers.
SLOW_MODULES = {"test_pos_model", "test_pos_optimize", "test_pos_segmenter", "test_sentiment_model",
                "test_sentiment_recipe", "test_sentiment_wide", "test_shipped_pos"}
SLOW_TESTS = {"test_the_client_wheel_is_typed_and_needs_only_httpx"}  # pip builds a wheel


def _starts_a_server(func) -> bool:
    code = getattr(func, "__code__", None)
    return code is not None and not STARTS_A_SERVER.isdisjoint(code.co_names)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `server` every test of a server module, and every other one that starts a server itself or through
    one of its fixtures (the shared `server_url` among them); mark `slow` the slow modules' and tests'."""
    for item in items:
        module = getattr(getattr(item, "module", None), "__name__", "").rpartition(".")[2]
        info = getattr(item, "_fixtureinfo", None)
        fixtures = [d.func for defs in (info.name2fixturedefs.values() if info else ()) for d in defs]
        if module in SERVER_MODULES or any(_starts_a_server(f) for f in [getattr(item, "obj", None), *fixtures]):
            item.add_marker(pytest.mark.server)
        if module in SLOW_MODULES or getattr(item, "originalname", item.name) in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def no_client_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK's environment defaults unset, so a test sees only what it passes."""
    monkeypatch.delenv("SENPOS_URL", raising=False)
    monkeypatch.delenv("SENPOS_API_KEY", raising=False)
