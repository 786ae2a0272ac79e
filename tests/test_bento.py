"""The Bentos for real: the models go into a fresh BentoML model store, both bentofiles build from it, and the
CPU Bento serves both endpoints with the models it carries (`bentoml serve <tag>`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from bench.harness import BENTOML, running_server, server_log
from senpos.identity import NAMES as STORE_NAMES
from senpos.identity import file_sha256, headline_metrics, model_version

from .conftest import REPO

MODELS = {"sentiment": REPO / "models" / "sentiment", "pos": REPO / "models" / "pos"}
HEADLINE = {"sentiment": "report_accuracy", "pos": "dev_seg_pos_f1"}  # as each model card states it


def _run(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run a command with this BentoML home and no SENPOS_* settings but `env`'s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SENPOS_")}
    result = subprocess.run(args, cwd=REPO, env={**base, "BENTOML_HOME": str(home), **(env or {})},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def _stored(home: Path) -> dict[str, dict]:
    """tag name -> the store's model.yaml of its latest version."""
    out = {}
    for tag in json.loads(_run(home, BENTOML, "models", "list", "-o", "json")):
        out[tag["tag"].split(":")[0]] = yaml.safe_load(_run(home, BENTOML, "models", "get", tag["tag"]))
    return out


def _build(home: Path, bentofile: str) -> tuple[str, Path]:
    """Build; returns the Bento's tag and its directory in the store."""
    lines = _run(home, BENTOML, "build", "-f", bentofile, "-o", "tag").splitlines()
    (tag,) = [x.removeprefix("__tag__:") for x in lines if x.startswith("__tag__:")]
    name, version = tag.split(":")
    return tag, home / "bentos" / name / version


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A BentoML home whose model store holds the imported models (`make models-import`)."""
    home = tmp_path_factory.mktemp("bentoml-home")
    _run(home, sys.executable, "-m", "service.model_store")
    return home


@pytest.fixture(scope="module")
def cpu_bento(home) -> tuple[str, Path]:
    return _build(home, "bentofile.yaml")


def test_models_import_labels_each_model_and_is_idempotent(home):
    stored = _stored(home)
    assert set(stored) == set(STORE_NAMES.values())
    for model, name in STORE_NAMES.items():
        labels = stored[name]["labels"]
        assert labels["task"] == model
        assert labels["sha256"] == file_sha256(MODELS[model] / "model.onnx")
        assert len(labels["vocab_sha256"]) == 64
        metrics = headline_metrics(model, MODELS[model])
        assert len(metrics) >= 2 and all(0 <= v <= 1 for v in metrics.values())
        assert metrics[HEADLINE[model]] > 0.9
        assert stored[name]["metadata"]["metrics"] == metrics
        assert stored[name]["version"] == model_version(MODELS[model])  # the version GET /info reports
        assert {k: float(labels[k]) for k in metrics} == metrics
    again = _run(home, sys.executable, "-m", "service.model_store")
    assert again.count("already in the store") == 2
    assert len(json.loads(_run(home, BENTOML, "models", "list", "-o", "json"))) == 2


def test_cpu_bento_records_its_models_and_ships_no_model_files_as_source(home, cpu_bento):
    _, path = cpu_bento
    info = yaml.safe_load((path / "bento.yaml").read_text())
    stored = {f"{name}:{m['version']}" for name, m in _stored(home).items()}
    assert {m["tag"] for m in info["models"]} == stored
    (service,) = info["services"]
    assert {m["tag"] for m in service["models"]} == stored
    src = path / "src"
    assert (src / "service" / "service.py").is_file() and (src / "senpos" / "sentiment.py").is_file()
    assert not (src / "models").exists()
    static = [p.relative_to(REPO) for p in (REPO / "service" / "static").rglob("*") if p.is_file()]
    assert all((src / p).is_file() for p in static)
    requirements = (path / "env" / "python" / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "\n-r " not in requirements


def test_gpu_bentofile_builds_with_the_same_models(home, cpu_bento):
    _, path = _build(home, "bentofile.gpu.yaml")
    info = yaml.safe_load((path / "bento.yaml").read_text())
    cpu_info = yaml.safe_load((cpu_bento[1] / "bento.yaml").read_text())
    assert {m["tag"] for m in info["models"]} == {m["tag"] for m in cpu_info["models"]}
    requirements = (path / "env" / "python" / "requirements.txt").read_text()
    assert "onnxruntime-gpu==" in requirements and "onnxruntime==" not in requirements


def test_cpu_bento_serves_both_endpoints_with_the_models_it_carries(home, cpu_bento):
    tag, path = cpu_bento
    info = yaml.safe_load((path / "bento.yaml").read_text())
    versions = {m["tag"].split(":")[0]: m["tag"].split(":")[1] for m in info["models"]}
    with running_server({"BENTOML_HOME": str(home)}, target=tag) as url:
        sentiment = httpx.post(f"{url}/sentiment", json={"texts": ["A wonderful, moving film."]}, timeout=30)
        assert sentiment.status_code == 200 and sentiment.json()[0]["label"] == "positive"
        pos = httpx.post(f"{url}/pos-tag", json={"texts": ["我们热爱和平。"]}, timeout=30)
        assert pos.status_code == 200 and pos.json()[0]["words"] == ["我们", "热爱", "和平", "。"]
        log = server_log(url).read_text(errors="replace")
    # Each model is loaded from the store's version directory, not from the repository's models/.
    assert f"{versions['senpos-sentiment']}/model.onnx runs on" in log
    assert f"{versions['senpos-pos']}/model.int8.onnx runs on" in log
    assert " sentiment/model.onnx runs on" not in log and " pos/model.int8.onnx runs on" not in log


def _model_dirs(home: Path, **env: str) -> dict:
    """SETTINGS' model directories and store tags in a fresh process with this BentoML home and environment."""
    code = "from service.settings import SETTINGS as S; import json; " \
           "print(json.dumps([str(S.sentiment_model), str(S.pos_model), S.store_tags]))"
    sentiment, pos, tags = json.loads(_run(home, sys.executable, "-c", code, env=env).splitlines()[-1])
    return {"sentiment": Path(sentiment), "pos": Path(pos), "tags": tags}


def test_model_directory_is_the_explicit_path_then_the_store_then_the_repository(home, tmp_path):
    empty = _model_dirs(tmp_path / "empty-home")
    assert empty == {"sentiment": MODELS["sentiment"], "pos": MODELS["pos"], "tags": {}}
    stored = _model_dirs(home)
    assert set(stored["tags"]) == {"sentiment", "pos"}
    for model in ("sentiment", "pos"):
        version = stored["tags"][model].split(":")[1]
        assert stored[model] == home / "models" / STORE_NAMES[model] / version
    explicit = _model_dirs(home, SENPOS_SENTIMENT_MODEL="models/sentiment")
    assert explicit["sentiment"] == MODELS["sentiment"] and explicit["pos"] == stored["pos"]
    assert set(explicit["tags"]) == {"pos"}
