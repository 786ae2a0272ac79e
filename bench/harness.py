"""Servers for the tests and the benchmarks: the real one (`bentoml serve`, the command the container runs) and
the peers, each on a port reserved for it (`free_port`) in a process session of its own, ready before it is
used, stopped after."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from service.settings import SERVE_TARGET

REPO = Path(__file__).resolve().parents[1]
BENTOML = str(Path(sys.executable).with_name("bentoml"))
LOGS = REPO / ".pytest_cache"  # each server's output and BENTOML_HOME, named by its port


def serve_command(port: int, target: str = SERVE_TARGET) -> list[str]:
    return [BENTOML, "serve", target, "--port", str(port)]


# Ports handed out by `free_port` and not yet released, each with the socket that reserves it (None where the
# platform cannot share a reserved port with the server that binds it: then only this process avoids reusing it).
_RESERVED: dict[int, socket.socket | None] = {}
_RESERVED_LOCK = threading.Lock()


def _reservation() -> socket.socket:
    """A socket bound to a free port on every address, not listening, with SO_REUSEADDR (as circus' sockets, which
    `bentoml serve` listens on, and asyncio's servers, which the model process listens on, have it): Linux lets
    such a socket share its port with a server that binds and listens on it later, while every other bind(0),
    in this process or another, and every outgoing connection's ephemeral port skips it."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("", 0))
    return sock


@functools.cache
def _reservations_share() -> bool:
    """Whether a server can bind and listen on a port while a reservation holds it (Linux: yes; BSDs: no)."""
    with _reservation() as held, socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            server.bind(("127.0.0.1", held.getsockname()[1]))
            server.listen()
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port for a server this process starts: reserved (see `_reservation`) until `release_port(port)`, so
    that no other pick, here or in another process, gets it between now and the moment the server binds it.
    `started` releases it when its server stops; `reserved_port` when its block ends."""
    with _RESERVED_LOCK:
        while True:
            sock = _reservation()
            port = sock.getsockname()[1]
            if port not in _RESERVED:
                break
            sock.close()
        if _reservations_share():
            _RESERVED[port] = sock
        else:
            sock.close()
            _RESERVED[port] = None
        return port


def release_port(port: int) -> None:
    with _RESERVED_LOCK:
        sock = _RESERVED.pop(port, None)
    if sock is not None:
        sock.close()


@contextmanager
def reserved_port() -> Iterator[int]:
    """`free_port()`, released when the block ends (after the server given it has stopped)."""
    port = free_port()
    try:
        yield port
    finally:
        release_port(port)


def server_log(base: str) -> Path:
    """The output of the server at `base` that `server_process` started."""
    return LOGS / f"server-{base.rsplit(':', 1)[1]}.log"


def readyz(base: str) -> bool:
    return httpx.get(f"{base}/readyz", timeout=2).status_code == 200


def answers_sentiment(base: str) -> bool:
    """Ready for a peer that has no readiness probe: it answers a review (the request also warms it up)."""
    return httpx.post(f"{base}/sentiment", json={"texts": ["warm up"]}, timeout=5).status_code == 200


@contextmanager
def running_server(env: dict[str, str] | None = None, ready_timeout: float = 120.0,
                   target: str = SERVE_TARGET, cwd: Path = REPO) -> Iterator[str]:
    """Yield the base URL of a ready server (the source tree at `cwd`); its output goes to `server_log(base)`."""
    with server_process(env, ready_timeout, target, cwd) as (base, _):
        yield base


@contextmanager
def server_process(env: dict[str, str] | None = None, ready_timeout: float = 120.0,
                   target: str = SERVE_TARGET, cwd: Path = REPO) -> Iterator[tuple[str, subprocess.Popen]]:
    """Yield (base URL, the `bentoml serve` Popen) of a ready server, for callers that signal it."""
    port = free_port()
    LOGS.mkdir(exist_ok=True)
    # Each server gets its own BENTOML_HOME: `bentoml serve` wipes $BENTOML_HOME/prometheus_multiproc_dir at
    # start, so a second server sharing it would leave the first one's /metrics frozen.
    env = {"BENTOML_HOME": str(LOGS / f"bentoml-home-{port}"), **(env or {})}
    with open(LOGS / f"server-{port}.log", "w+") as log, \
            started(serve_command(port, target), port, readyz, env, ready_timeout, log, cwd=cwd) as served:
        yield served


@contextmanager
def started(cmd: list[str], port: int, ready: Callable[[str], bool], env: dict[str, str] | None = None,
            ready_timeout: float = 120.0, output: IO | int = subprocess.DEVNULL,
            poll_s: float = 0.5, cwd: Path = REPO) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run `cmd` (a server on `port`) in its own process session; yield (base URL, Popen) once `ready(base)`
    holds; then stop the whole session, SIGTERM first, so that no worker outlives it, and release `port` (if
    `free_port` reserved it)."""
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=output,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[1:3]} exited with {proc.returncode} before it was ready{_tail(output)}")
            try:
                if ready(base):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{cmd[1:3]} not ready after {ready_timeout}s")
            time.sleep(poll_s)
        yield base, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
        release_port(port)


def _tail(output: IO | int, lines: int = 20) -> str:
    """The last lines a server wrote to `output`, when it is a file, for the error that says it died."""
    if isinstance(output, int):
        return ""
    try:
        output.flush()
        text = Path(output.name).read_text(errors="replace")
    except (AttributeError, OSError, TypeError):
        return ""
    return ":\n" + "\n".join(text.splitlines()[-lines:])


def if_alive(fn: Callable[[], Any], default: Any) -> Any:
    """`fn()`, or `default` when its process is exiting or being restarted."""
    try:
        return fn()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return default


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def api_workers(pid: int) -> list[psutil.Process]:
    """The API (Senpos) worker processes of the server whose `bentoml serve` is `pid`."""
    from service.bentoml_seam import is_service_worker

    return [p for p in process_tree(pid) if is_service_worker(if_alive(p.cmdline, []))]
