"""One data root for training, the benchmarks and the tests: $SENPOS_DATA, else ../shared/data."""

from senpos.data_root import data_root

from .conftest import REPO


def test_the_data_root_is_senpos_data_when_set(monkeypatch, tmp_path):
    monkeypatch.setenv("SENPOS_DATA", str(tmp_path))
    assert data_root() == tmp_path


def test_the_data_root_is_the_shared_folder_next_to_the_checkout_otherwise(monkeypatch):
    monkeypatch.delenv("SENPOS_DATA", raising=False)
    assert data_root() == REPO.parent / "shared" / "data"
    monkeypatch.setenv("SENPOS_DATA", "")  # set but empty: as if unset
    assert data_root() == REPO.parent / "shared" / "data"
