"""Deployment files, checked statically (no Docker engine or cluster here)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from bench.harness import serve_command
from service.settings import SERVE_TARGET

from .conftest import REPO

DOCKERFILES = [REPO / "docker" / "Dockerfile.cpu", REPO / "docker" / "Dockerfile.gpu"]
# Vendored (deploy/schemas/SOURCE.md says from where), so the check runs in every clone.
COMPOSE_SCHEMA = REPO / "deploy" / "schemas" / "compose-spec.json"


def _cmd(dockerfile: Path) -> list[str]:
    (line,) = [x for x in dockerfile.read_text().splitlines() if x.startswith("CMD ")]
    return json.loads(line[4:])


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_container_command_is_the_tested_command(dockerfile):
    tested = serve_command(3000)
    assert _cmd(dockerfile) == [Path(tested[0]).name, *tested[1:]]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_runs_as_non_root_with_models_and_healthcheck(dockerfile):
    text = dockerfile.read_text()
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "COPY models/sentiment/" in text and "COPY models/pos/" in text
    assert "COPY service/ service/" in text  # all of it: the page's static files too
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", text, re.M)


def test_dockerfiles_pass_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _requirements(name: str) -> dict[str, str]:
    """Package name -> its whole line, for one requirements file."""
    lines = (REPO / "requirements" / name).read_text().splitlines()
    return {re.split(r"[=<> ]", x)[0]: x for x in lines if x.strip() and not x.startswith("#")}


@pytest.mark.parametrize("suffix", [".txt", ".lock.txt"])
def test_never_both_onnxruntimes_and_never_torch(suffix):
    cpu, gpu = _requirements(f"serve-cpu{suffix}"), _requirements(f"serve-gpu{suffix}")
    assert "onnxruntime" in cpu and "onnxruntime-gpu" not in cpu
    assert "onnxruntime-gpu" in gpu and "onnxruntime" not in gpu
    assert "torch" not in cpu | gpu


def test_cpu_and_gpu_requirements_differ_only_in_onnxruntime():
    cpu, gpu = _requirements("serve-cpu.txt"), _requirements("serve-gpu.txt")
    assert cpu.keys() - {"onnxruntime"} == gpu.keys() - {"onnxruntime-gpu"}
    assert all(cpu[name] == gpu[name] for name in cpu.keys() - {"onnxruntime"})
    assert cpu["onnxruntime"].split("==")[1] == gpu["onnxruntime-gpu"].split("==")[1]
    # `bentoml build` copies only the named file into the Bento: a nested -r/-c file would not be there.
    assert not any(line.startswith("-") for line in [*cpu, *gpu])


# What each image and Bento installs: the lock file, the Python it was locked for, and the files that install it.
LOCKED = {"cpu": ("serve-cpu.lock.txt", "bentofile.yaml", "Dockerfile.cpu"),
          "gpu": ("serve-gpu.lock.txt", "bentofile.gpu.yaml", "Dockerfile.gpu")}


def _lock_module():
    spec = importlib.util.spec_from_file_location("senpos_requirements_lock", REPO / "requirements" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pins(path: Path) -> dict[str, str]:
    """canonical name -> version, for a file of `name==version` lines (comments and blank lines skipped)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out


@pytest.mark.parametrize("lock", ["serve-cpu.lock.txt", "serve-gpu.lock.txt"])
def test_lock_files_are_current(lock):
    # Regenerated from requirements/serve-*.txt, constraints.txt and the installed packages' metadata: a stale lock
    # (a pin or a dependency changed since) fails here.
    assert (REPO / "requirements" / lock).read_text() == _lock_module().render(lock), \
        "run `.venv/bin/python requirements/lock.py`"


@pytest.mark.parametrize("variant", LOCKED)
def test_images_and_bentos_install_exactly_the_constraints_versions(variant):
    lock, bentofile, dockerfile = LOCKED[variant]
    constraints = _pins(REPO / "constraints.txt")
    locked = _pins(REPO / "requirements" / lock)
    # Every package installed is pinned to the version the tests ran with (onnxruntime-gpu: the same release as the
    # onnxruntime that constraints.txt pins), and every direct requirement is among them at its own pin.
    assert {n: constraints.get("onnxruntime" if n == "onnxruntime-gpu" else n) for n in locked} == locked
    assert _pins(REPO / "requirements" / f"serve-{variant}.txt").items() <= locked.items()
    python = _lock_module().LOCKS[lock][1]

    # The Dockerfile installs that file and nothing else, without resolving (so nothing unpinned slips in),
    # on the Python it was locked for.
    text = (REPO / "docker" / dockerfile).read_text()
    installs = re.findall(r"pip install ([^\n\\&]*)", text)
    assert installs == [f"--no-cache-dir --no-deps -r requirements/{lock} "], installs
    assert re.search(rf"-r requirements/{re.escape(lock)} \\\n\s+&& pip check", text)
    assert f"COPY requirements/{lock} requirements/" in text
    assert set(re.findall(r"python:?(3\.\d+)", text)) == {python}

    # The Bento: the same file, not re-locked by BentoML, installed as it is, on the same Python.
    bento = yaml.safe_load((REPO / bentofile).read_text())
    assert bento["python"]["requirements_txt"] == f"./requirements/{lock}"
    assert bento["python"]["lock_packages"] is False and "--no-deps" in bento["python"]["pip_args"].split()
    assert str(bento["docker"]["python_version"]) == python


@pytest.mark.parametrize("name,requirements", [("bentofile.yaml", "serve-cpu.lock.txt"),
                                               ("bentofile.gpu.yaml", "serve-gpu.lock.txt")])
def test_bentofiles(name, requirements):
    bento = yaml.safe_load((REPO / name).read_text())
    assert bento["service"] == SERVE_TARGET
    assert bento["python"]["requirements_txt"].endswith(requirements)
    # The models come from BentoML's model store (tests/test_bento.py builds both), the page's files with service/.
    assert bento["models"] == ["senpos-sentiment:latest", "senpos-pos:latest"]
    assert not any(x.startswith("models/") for x in bento["include"])
    assert {"service/**/*.py", "service/static/*"} <= set(bento["include"])


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml", "docker-compose.split.yml"])
def test_compose_files_match_the_compose_spec(name):
    import jsonschema

    doc = yaml.safe_load((REPO / name).read_text())
    jsonschema.validate(doc, json.loads(COMPOSE_SCHEMA.read_text()))


def test_compose_serves_cpu_on_3000_and_gpu_override_reserves_a_gpu():
    base = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    gpu = yaml.safe_load((REPO / "docker-compose.gpu.yml").read_text())["services"]["senpos"]
    assert base["senpos"]["ports"] == ["${SENPOS_HOST_PORT:-3000}:3000"]
    assert base["senpos"]["build"]["dockerfile"].endswith(".cpu")
    assert base["senpos"]["restart"] and "readyz" in " ".join(base["senpos"]["healthcheck"]["test"])
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


@pytest.mark.parametrize("name", ["docker-compose.yml", "docker-compose.gpu.yml"])
def test_compose_files_suit_compose_v1_too(name):
    # Debian's docker-compose 1.29 refuses a top-level `name:` (make test-container runs `docker-compose config`).
    doc = yaml.safe_load((REPO / name).read_text())
    top_level = {k for k in doc if not k.startswith("x-")}
    assert top_level <= {"services", "volumes", "networks", "secrets", "configs"}


def test_split_compose_file_is_the_split_layout_behind_one_gateway():
    """docker-compose.split.yml: what scripts/test-split.sh runs, checked in every clone."""
    services = yaml.safe_load((REPO / "docker-compose.split.yml").read_text())["services"]
    models, api, gateway = services["models"], services["api"], services["gateway"]
    assert models["command"][-3:] == ["service.service:SenposModels", "--port", "3000"]
    port = models["environment"]["SENPOS_MODEL_ADDRESS"].rpartition(":")[2]
    assert api["environment"]["SENPOS_LAYOUT"] == "split"
    assert api["environment"]["SENPOS_MODEL_ADDRESS"] == f"tcp://models:{port}"
    assert "readyz" in " ".join(models["healthcheck"]["test"]) and "livez" in " ".join(api["healthcheck"]["test"])
    assert api["deploy"]["update_config"]["order"] == "start-first"
    assert {s["deploy"]["endpoint_mode"] for s in (models, api)} == {"dnsrr"}  # swarm's VIPs need IPVS
    assert "ports" not in models and "ports" not in api  # only the gateway is published
    config = (REPO / "deploy" / "haproxy" / "haproxy.cfg").read_text()
    assert "server-template api" in config and "api:3000" in config and "GET /readyz" in config
    assert gateway["configs"][0]["target"] == "/usr/local/etc/haproxy/haproxy.cfg"


def test_compose_takes_the_api_key_from_the_host_not_from_the_file():
    senpos = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]["senpos"]
    assert senpos["environment"]["SENPOS_API_KEY"] == "${SENPOS_API_KEY:-}"
    for ignore in (".gitignore", ".dockerignore"):  # a .env beside the file holds the key: never in git or an image
        assert ".env" in (REPO / ignore).read_text().split()


SECRET = REPO / "deploy" / "k8s" / "examples" / "senpos-api-key.yaml"


def test_kubernetes_api_key_secret_example_validates():
    import kubernetes_validate

    secret = yaml.safe_load(SECRET.read_text())
    kubernetes_validate.validate(secret, "1.37.0", strict=True)
    assert secret["kind"] == "Secret" and secret["metadata"]["name"] == "senpos-api-key"
    assert "api-key" in secret["stringData"]


@pytest.mark.parametrize("manifest", sorted((REPO / "deploy" / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_kubernetes_manifests_validate(manifest):
    import kubernetes_validate

    docs = [d for d in yaml.safe_load_all(manifest.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler"} <= kinds
    for doc in docs:
        kubernetes_validate.validate(doc, "1.37.0", strict=True)
    containers = [d["spec"]["template"]["spec"]["containers"][0] for d in docs if d["kind"] == "Deployment"]
    secret = yaml.safe_load(SECRET.read_text())
    api_key = {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "api-key", "optional": True}}
    assert [e["valueFrom"] for e in containers[0]["env"] if e["name"] == "SENPOS_API_KEY"] == [api_key]
    for container in containers:
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    if "gpu" in manifest.name:  # the split layout across pods: API pods on CPU feed one model pod per GPU
        api, models = containers
        env = {e["name"]: e.get("value") for e in api["env"]}
        assert env["SENPOS_LAYOUT"] == "split" and env["SENPOS_MODEL_ADDRESS"] == "tcp://senpos-models:7000"
        assert "nvidia.com/gpu" not in api["resources"]["limits"]
        assert models["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert models["command"][-3:] == ["service.service:SenposModels", "--port", "3000"]


def strict(schema):
    """A CRD schema in which an object's unknown field is an error (a cluster prunes it silently)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


KSERVE = {"ServingRuntime": "kserve-servingruntime-v1alpha1", "InferenceService": "kserve-inferenceservice-v1beta1"}


def kserve_schema(kind: str) -> jsonschema.Draft7Validator:
    with gzip.open(REPO / "deploy" / "schemas" / f"{KSERVE[kind]}.json.gz") as f:
        return jsonschema.Draft7Validator(strict(json.load(f)))  # not checked against the metaschema: 20 s


def test_kserve_runtime_and_inference_service_match_kserves_crds():
    docs = [d for d in yaml.safe_load_all((REPO / "deploy" / "k8s" / "kserve" / "senpos.yaml").read_text()) if d]
    assert [d["kind"] for d in docs] == ["ServingRuntime", "InferenceService"]
    for doc in docs:
        kserve_schema(doc["kind"]).validate(doc)
    runtime, service = docs
    assert runtime["spec"]["protocolVersions"] == ["v2"]
    container = runtime["spec"]["containers"][0]
    assert container["args"][:3] == ["bentoml", "serve", "service.service:Senpos"]
    port = container["ports"][0]["containerPort"]
    assert container["args"][-2:] == ["--port", str(port)] and port == 8080  # where KServe sends HTTP
    assert container["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": port}
    model = service["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"] and model["protocolVersion"] == "v2"
    assert model["modelFormat"]["name"] in {f["name"] for f in runtime["spec"]["supportedModelFormats"]}
    broken = {**service, "spec": {"predictor": {**service["spec"]["predictor"], "replicas": 3}}}
    with pytest.raises(jsonschema.ValidationError):  # the strictness is real: a misspelt field fails
        kserve_schema("InferenceService").validate(broken)
