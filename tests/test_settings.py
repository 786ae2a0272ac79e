"""The configuration table has one source (service/settings.CONFIG) and the README shows exactly it."""

from __future__ import annotations

import re

import pytest

from service import settings
from service.settings import CONFIG, Settings, markdown_table

from .conftest import REPO


def test_the_readme_shows_the_settings_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "README.md's configuration table differs: paste `python -m service.settings`"


def test_every_variable_read_is_in_the_table_and_every_row_is_read():
    source = (REPO / "service" / "settings.py").read_text(encoding="utf-8")
    code = source[source.index("class Settings"):]
    read = set(re.findall(r'"(SENPOS_[A-Z_]+)"', code))
    assert read == {name for name, _, _ in CONFIG}


def test_defaults_come_from_the_table(monkeypatch):
    for name, _, _ in CONFIG:
        monkeypatch.delenv(name, raising=False)
    s = Settings.from_env()
    assert s.max_items == 256 and s.max_request_chars == {"sentiment": 200_000, "pos": 16_000}
    assert s.api_keys == () and s.layout == "auto" and s.sentiment_model == settings.REPO / "models" / "sentiment"
    monkeypatch.setenv("SENPOS_MAX_REQUEST_CHARS", "pos=9")
    monkeypatch.setenv("SENPOS_API_KEY", " a , b ")
    s = Settings.from_env()
    assert s.max_request_chars == {"sentiment": 200_000, "pos": 9} and s.api_keys == ("a", "b")
    monkeypatch.setenv("SENPOS_MAX_ITEMS", "many")
    with pytest.raises(SystemExit, match="SENPOS_MAX_ITEMS"):
        Settings.from_env()
