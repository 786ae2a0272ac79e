"""Seconds-long runs of the benchmark and the stress harness, so they cannot rot (the real runs: make bench,
make stress)."""

import json
import subprocess
import sys

import pytest

from bench.report import targets

from .conftest import REPO

SMOKE = REPO / "bench" / "results" / "smoke"


def _run(module: str, old: str, *args: str) -> None:
    for path in SMOKE.glob(old):
        path.unlink()
    proc = subprocess.run([sys.executable, "-m", module, "--smoke", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_bench_smoke():
    _run("bench.run", "cpu-*")
    (result,) = [json.loads(p.read_text()) for p in SMOKE.glob("cpu-*.json")]
    assert result["limit"]["sentiment"]["reviews_per_s"] > 0
    assert all(r["statuses"].get("200") for r in result["service"]["one_per_request"])
    assert result["naive"][0]["statuses"].get("200")
    assert set(result["service_layouts"]) == {"single", "split"}  # both layouts, side by side
    assert all(r["statuses"].get("200") for rows in result["service_layouts"].values() for r in rows["one_per_request"])
    assert result["stock_bentoml"][0]["statuses"].get("200")
    assert result["pos_in_process"]["pipeline_chars_per_s"] > 0
    assert (SMOKE / f"{result['name']}.md").exists() and (SMOKE / f"{result['name']}.png").exists()
    if any(ok is False for _, _, ok in targets(result)):  # then the report says where the time goes
        assert all(sum(result["profile"][path]["samples"].values()) > 0 for path in ("/sentiment", "/pos-tag"))
        assert "## Where the time goes" in (SMOKE / f"{result['name']}.md").read_text()


def test_stress_smoke():
    _run("bench.stress", "stress-*")
    (result,) = [json.loads(p.read_text()) for p in SMOKE.glob("stress-*.json")]
    assert result["schemathesis"]["passed"], result["schemathesis"]
    assert result["overload"]["only_200_429_503"], result["overload"]
    assert result["soak"]["errors"] == 0, result["soak"]
    # Where the cores went is part of each load report: the machine's share and each API worker's.
    for cpu in (result["overload"], *result["soak"]["cpu_per_window"], *result["saturation"]["tried"]):
        assert len(cpu["api_workers_percent"]) == 2 and 0 < cpu["machine_busy_percent"] <= 100, cpu
    assert max(result["overload"]["api_workers_percent"]) > 0, result["overload"]
    assert result["kill_worker"]["recovered"], result["kill_worker"]
    assert result["sigterm"]["server_exit_code"] is not None
    # In-flight requests complete or are refused cleanly (503 or a closed connection), never a 500.
    assert "500" not in result["sigterm"]["statuses"], result["sigterm"]


def test_gpu_proof_smoke():
    """The GPU proof's script rehearsed on CPU: without CUDA it runs the CPU half, and the server's log names the
    provider each model runs on."""
    _run("bench.gpu", "gpu-*", "--workers", "1", "--clients", "2")
    (result,) = [json.loads(p.read_text()) for p in SMOKE.glob("gpu-*.json") if p.name != "gpu-latest.json"]
    assert result["cuda"] is False and "parity" not in result
    assert result["limit"]["cpu"]["sentiment"]["reviews_per_s"] > 0
    cpu = result["service"]["cpu"]
    assert all(r["statuses"].get("200") for key in ("sentiment_one_per_request", "sentiment_batched_64")
               for r in cpu[key])
    assert cpu["log_lines_runs_on"] == ["pos/features.onnx runs on CPUExecutionProvider",
                                        "pos/model.int8.onnx runs on CPUExecutionProvider",
                                        "pos/segmenter.onnx runs on CPUExecutionProvider",
                                        "sentiment/model.onnx runs on CPUExecutionProvider"]
    assert cpu["log_models_loaded"] == 1 and cpu["log_fell_back"] == 0
    assert sum(cpu["profile_one_per_request"]["samples"].values()) > 0  # py-spy ran (a fresh clone once lacked it)
    assert (SMOKE / f"{result['name']}.md").exists()
    latest = json.loads((SMOKE / "gpu-latest.json").read_text())  # the headline the README quotes
    runs = ("sentiment_one_per_request", "sentiment_client_batched", "pos_one_per_request", "pos_client_batched")
    assert {"date", "gpu", "command", *runs} <= set(latest)
    assert all(latest[run]["cpu"] > 0 for run in runs)


def test_a_real_run_never_falls_back_to_the_fixtures(monkeypatch, tmp_path):
    from bench import payloads

    monkeypatch.setattr(payloads, "DATA", tmp_path)  # no data here
    with pytest.raises(SystemExit, match="needs the real data"):
        payloads.reviews(10)
    with pytest.raises(SystemExit, match="needs the real data"):
        payloads.sentences(10)
    assert len(payloads.reviews(10, smoke=True)) == 10 and len(payloads.sentences(10, smoke=True)) == 10


def test_profile_smoke():
    _run("bench.profile", "profile-*")
    (result,) = [json.loads(p.read_text()) for p in SMOKE.glob("profile-*.json")]
    assert set(result["runs"]) == {"/sentiment (IMDB reviews)", "/pos-tag (PFR dev sentences)"}
    for run in result["runs"].values():  # py-spy saw the workers busy, under a load that was served
        assert run["items_per_s"] > 0 and sum(run["samples"].values()) > 0, run
    assert "| onnxruntime (the model) |" in (SMOKE / f"profile-{result['date']}.md").read_text()
