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
