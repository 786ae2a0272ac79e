#!/usr/bin/env bash
# make test-split: the split topology of docker-compose.split.yml (a `models` service fed by `api` replicas behind
# a `gateway`) run for real on a Docker engine, with Compose and then as a swarm stack. Checks:
# - Compose (`up --wait`, 3 api replicas): both APIs answer through the one published port; every replica answers
#   part of the traffic; with 4 requests in flight at each replica, the model service's batches hold more than 4
#   (its /metrics): one queue batches across replicas.
# - Swarm (`docker stack deploy` on a one-node swarm, overlay network): killing the model container gives fast
#   503s with Retry-After, and the service recovers when swarm restarts it, with the same api containers (none
#   restarted); a rolling update of the api service (`docker service update --force`) under a steady closed
#   loop answers every request with 200 (counted).
#
# Needs root on Debian; sets up what it needs as scripts/test-container.sh does (scripts/container-lib.sh), plus a
# local stand-in for haproxy:2.6 where none is present (scripts/haproxy-stand-in.Dockerfile). Initialises a swarm
# if the engine is in none, and leaves it again at the end. Always cleans up.
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=test-split
PROJECT=senpos-test-split-$$
STACK=senpos-split-$$
# shellcheck source=scripts/container-lib.sh
source scripts/container-lib.sh
PROBE_PID=""
STARTED_SWARM=""
GATEWAY_IMAGE=haproxy:2.6

compose() { docker compose -p "$PROJECT" -f docker-compose.split.yml "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT
    [[ -n $PROBE_PID ]] && kill "$PROBE_PID" 2>/dev/null
    if docker info >/dev/null 2>&1; then
        compose down --volumes --remove-orphans --timeout 10 >/dev/null 2>&1 || true
        if docker stack ls 2>/dev/null | grep -q "^$STACK "; then
            docker stack rm "$STACK" >/dev/null 2>&1 || true
            for _ in $(seq 60); do
                [[ -z $(docker ps -aq -f "label=com.docker.stack.namespace=$STACK") ]] && break
                sleep 1
            done
        fi
        [[ -n $STARTED_SWARM ]] && docker swarm leave --force >/dev/null 2>&1 && say "left the swarm it started"
    fi
    finish "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ensure_gateway_image() {
    docker image inspect "$GATEWAY_IMAGE" >/dev/null 2>&1 && return
    say "$GATEWAY_IMAGE is not here and no registry can be reached: building a local stand-in"
    ensure_rootfs
    mkdir -p "$TMP/gateway"
    docker build -q -t "$GATEWAY_IMAGE" -f scripts/haproxy-stand-in.Dockerfile "$TMP/gateway" \
        >"$CACHE/gateway.log" 2>&1 || { tail -20 "$CACHE/gateway.log"; fail "the stand-in gateway did not build"; }
}

# metric NAME_PREFIX LABEL_SUBSTRING: sums the samples of a metric read from stdin (Prometheus text format).
metric() {
    python3 -c '
import sys
name, label = sys.argv[1:3]
print(sum(float(l.split()[-1]) for l in sys.stdin if l.startswith(name) and label in l))' "$@"
}

# metrics_of CONTAINER: the /metrics text of the server inside a container.
metrics_of() {
    docker exec "$1" python -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:3000/metrics', timeout=10).read().decode())"
}

# probe OUT ARGS...: scripts/split_probe.py in the background, its JSON to OUT.
probe() {
    local out=$1
    shift
    python3 scripts/split_probe.py --api-key "$SENPOS_API_KEY" "$@" >"$out" &
    PROBE_PID=$!
}

wait_probe() {
    wait "$PROBE_PID" || fail "the load probe failed"
    PROBE_PID=""
}

# until_ok SECONDS WHAT COMMAND...: run COMMAND every second until it succeeds.
until_ok() {
    local limit=$1 what=$2
    shift 2
    for _ in $(seq "$limit"); do
        "$@" >/dev/null 2>&1 && return
        sleep 1
    done
    fail "$what: not within $limit s"
}

gateway_answers() { [[ $(ask POST /sentiment '{"texts": ["Fine."]}' "$SENPOS_API_KEY") == 200* ]]; }
all_api_replicas_run() { [[ $(docker service ls -f "name=${STACK}_api" --format '{{.Replicas}}') == 3/3* ]]; }

install_tools
start_dockerd
ensure_base_image
ensure_gateway_image

export_port_and_key
compose config -q || fail "docker compose rejects docker-compose.split.yml"

build_image models

# ---- Compose ----
say "Compose: up --wait (gateway on port $SENPOS_HOST_PORT)"
t=$SECONDS
compose up -d --wait --wait-timeout 400 >"$TMP/up.log" 2>&1 \
    || { tail -20 "$TMP/up.log"; compose logs --tail 30; fail "not healthy"; }
say "healthy $((SECONDS - t)) s after up"
mapfile -t APIS < <(compose ps -q api)
expect "3 api replicas" "${#APIS[@]}" '^3$'
expect "POST /sentiment through the gateway" \
    "$(ask POST /sentiment '{"texts": ["A wonderful, moving film."]}' "$SENPOS_API_KEY")" '^200 \[\{"label": ?"positive"'
expect "POST /pos-tag through the gateway" "$(ask POST /pos-tag '{"texts": ["我们热爱和平。"]}' "$SENPOS_API_KEY")" \
    '^200 \[\{"words": ?\['
expect "POST /v2/models/sentiment/infer through the gateway" "$(ask POST /v2/models/sentiment/infer \
    '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Dull."]}]}' "$SENPOS_API_KEY")" \
    '^200 .*"label"'

say "12 connections through the gateway for 10 s"
probe "$TMP/gateway.json" --target "127.0.0.1:$SENPOS_HOST_PORT" --connections 12 --seconds 10
wait_probe
expect "every answer 200" "$(cat "$TMP/gateway.json")" '"outcomes": \{"200": [0-9]+\}'
for api in "${APIS[@]}"; do
    answered=$(metrics_of "$api" | metric bentoml_service_request_total 'endpoint="/sentiment",http_response_code="200"')
    expect "replica ${api:0:12} answered part of it ($answered)" "$answered" '^[1-9][0-9]*\.0$'
done

say "4 requests in flight at each replica, straight to the replicas, for 15 s"
models=$(compose ps -q models)
before=$(metrics_of "$models")
targets=()
for api in "${APIS[@]}"; do
    targets+=(--target "$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$api"):3000")
done
probe "$TMP/replicas.json" "${targets[@]}" --connections 4 --seconds 15
wait_probe
after=$(metrics_of "$models")
python3 - "$before" "$after" "$(cat "$TMP/replicas.json")" <<'EOF' || fail "the model service did not batch across replicas"
import json, sys
def buckets(text):
    out = {}
    for line in text.splitlines():
        if line.startswith("senpos_batch_size_bucket") and 'endpoint="sentiment"' in line:
            le = line.split('le="', 1)[1].split('"', 1)[0]
            out[float(le)] = out.get(float(le), 0) + float(line.split()[-1])
    return out
before, after, probe = buckets(sys.argv[1]), buckets(sys.argv[2]), json.loads(sys.argv[3])
grew = {le: after[le] - before.get(le, 0) for le in after}
batches, upto4 = grew[float("inf")], grew[4.0]
print(f"  {probe['requests']} requests {probe['outcomes']}; {batches:.0f} model batches, "
      f"{batches - upto4:.0f} of them with more than 4 reviews (batch size buckets: "
      f"{ {k: v for k, v in sorted(grew.items())} })")
assert probe["outcomes"] == {"200": probe["requests"]}, "not every request was answered 200"
assert batches - upto4 > 0, "no batch held more than one replica's 4 requests"
EOF
say "ok: one model queue batches across the replicas"
compose down --timeout 10 >/dev/null 2>&1

# ---- Swarm ----
if [[ $(docker info -f '{{.Swarm.LocalNodeState}}') != active ]]; then
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init failed"
    STARTED_SWARM=1
    say "initialised a one-node swarm"
fi
say "swarm: docker stack deploy"
t=$SECONDS
docker stack deploy -c docker-compose.split.yml "$STACK" >"$TMP/deploy.log" 2>&1 \
    || { cat "$TMP/deploy.log"; fail "docker stack deploy failed"; }
until_ok 400 "the stack answering through the gateway" gateway_answers
until_ok 300 "3 of 3 api replicas running" all_api_replicas_run
say "the stack answers, all 3 api replicas running, $((SECONDS - t)) s after deploy"

mapfile -t APIS_BEFORE < <(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_api" | sort)
models=$(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_models")
say "killing the model container ${models:0:12} under load"
probe "$TMP/outage.json" --target "127.0.0.1:$SENPOS_HOST_PORT" --connections 4 --until "$TMP/recovered"
sleep 3
docker kill "$models" >/dev/null
t=$SECONDS
sleep 5  # into the outage: the probe sees it
until_ok 300 "recovery after the model container was killed" gateway_answers
touch "$TMP/recovered"
wait_probe
say "recovered $((SECONDS - t)) s after the kill"
mapfile -t APIS_AFTER < <(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_api" | sort)
expect "the same api containers (none restarted)" "${APIS_AFTER[*]}" "^${APIS_BEFORE[*]}\$"
python3 - "$(cat "$TMP/outage.json")" <<'EOF' || fail "the outage was not answered with fast 503s"
import json, sys
probe = json.loads(sys.argv[1])
outcomes, slowest = probe["outcomes"], probe["slowest_s"]
print(f"  {probe['requests']} requests during the outage and recovery: {outcomes}; {probe['retry_after']} 503s "
      f"with Retry-After; slowest answer by kind: {slowest}")
assert outcomes.get("503", 0) > 0, "no 503 while the model service was down"
assert probe["retry_after"] == outcomes["503"], "a 503 without Retry-After"
assert slowest["503"] < 1.5, "a slow 503"  # a connection attempt to a vanished host waits 1 s at most
assert set(outcomes) <= {"200", "503"}, "answers other than 200 and 503"
EOF
say "ok: fast 503s with Retry-After while the model service was down, then 200s again"

say "rolling update of the api service under a closed loop (8 connections)"
probe "$TMP/update.json" --target "127.0.0.1:$SENPOS_HOST_PORT" --connections 8 --until "$TMP/updated"
sleep 3
t=$SECONDS
docker service update --force --detach=false "${STACK}_api" >"$TMP/update.log" 2>&1 \
    || { tail -20 "$TMP/update.log"; fail "docker service update failed"; }
sleep 3
touch "$TMP/updated"
wait_probe
mapfile -t APIS_NEW < <(docker ps -q -f "label=com.docker.swarm.service.name=${STACK}_api" | sort)
say "updated in $((SECONDS - t)) s; api containers now ${APIS_NEW[*]}"
[[ "${APIS_NEW[*]}" != "${APIS_AFTER[*]}" ]] || fail "the update replaced no container"
python3 - "$(cat "$TMP/update.json")" <<'EOF' || fail "a request was lost in the rolling update"
import json, sys
probe = json.loads(sys.argv[1])
print(f"  {probe['requests']} requests during the update: {probe['outcomes']}; slowest: {probe['slowest_s']}")
assert probe["outcomes"] == {"200": probe["requests"]} and probe["requests"] > 0
EOF
say "ok: the rolling update lost no request"
