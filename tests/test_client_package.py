"""The packages ship what they declare, and the client builds and runs on its own (httpx its only dependency)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import senpos_client

REPO = Path(__file__).resolve().parents[1]


def test_every_declared_package_data_file_exists():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    for project in (REPO, REPO / "client"):
        config = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
        declared = config["tool"]["setuptools"]["package-data"]
        for package, patterns in declared.items():
            for pattern in patterns:
                assert list((project / package.replace(".", "/")).glob(pattern)), f"{project.name}: {package}/{pattern}"


def test_the_client_wheel_is_typed_and_needs_only_httpx(tmp_path):
    source = shutil.copytree(REPO / "client", tmp_path / "client", ignore=shutil.ignore_patterns("*.egg-info", "build"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("senpos_client-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        modules = [archive.read(n).decode() for n in names if n.endswith(".py")]
    assert "senpos_client/py.typed" in names
    assert f"Version: {senpos_client.__version__}" in metadata.splitlines()
    requires = [line.split(":", 1)[1].split("<")[0].split(">")[0].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert requires == ["httpx"]
    imported = {alias.name.split(".")[0] for code in modules for node in ast.walk(ast.parse(code))
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for code in modules for node in ast.walk(ast.parse(code))
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == {"httpx", "senpos_client"}


def test_the_readme_shows_the_results_fields_in_their_real_order():
    """Issue 31.11: the README's reprs of the result types list the fields as `repr` prints them."""
    import dataclasses
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8") + (REPO / "client" / "README.md").read_text("utf-8")
    for kind in (senpos_client.PosResult, senpos_client.SentimentResult):
        shown = re.findall(rf"{kind.__name__}\(((?:\w+=[^,)]*(?:\)|, ))+)", readme)
        assert shown, kind.__name__
        for fields in shown:
            assert re.findall(r"(\w+)=", fields) == [f.name for f in dataclasses.fields(kind)], fields
