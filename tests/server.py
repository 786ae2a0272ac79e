"""Start the real server (`bentoml serve`, the same command the container runs) on a free port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from service.settings import SERVE_TARGET

REPO = Path(__file__).resolve().parents[1]
BENTOML = str(Path(sys.executable).with_name("bentoml"))


def serve_command(port: int, target: str = SERVE_TARGET) -> list[str]:
    """`bentoml serve` of the source's service, or of a built Bento when `target` is its tag."""
    return [BENTOML, "serve", target, "--port", str(port)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(env: dict[str, str] | None = None, ready_timeout: float = 120.0, target: str = SERVE_TARGET):
    """Yield the base URL of a ready server; its output goes to .pytest_cache/server-<port>.log."""
    with server_process(env, ready_timeout, target) as (base, _):
        yield base


@contextmanager
def server_process(env: dict[str, str] | None = None, ready_timeout: float = 120.0, target: str = SERVE_TARGET):
    """Yield (base URL, the `bentoml serve` Popen) of a ready server, for tests that signal it."""
    port = free_port()
    (REPO / ".pytest_cache").mkdir(exist_ok=True)
    with open(REPO / ".pytest_cache" / f"server-{port}.log", "w+") as log:
        yield from _serve(port, log, env, ready_timeout, target)


def server_log(base_url: str) -> str:
    """What the server at `base_url` has written so far."""
    return (REPO / ".pytest_cache" / f"server-{base_url.rsplit(':', 1)[1]}.log").read_text(errors="replace")


def _serve(port: int, log, env: dict[str, str] | None, ready_timeout: float, target: str):
    # Each server gets its own BENTOML_HOME: `bentoml serve` wipes $BENTOML_HOME/prometheus_multiproc_dir at
    # start, so a second server sharing it would leave the first one's /metrics frozen (a test caught it).
    home = REPO / ".pytest_cache" / f"bentoml-home-{port}"
    proc = subprocess.Popen(serve_command(port, target), cwd=REPO,
                            env={**os.environ, "BENTOML_HOME": str(home), **(env or {})},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode} before it was ready")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {ready_timeout}s")
            time.sleep(0.5)
        yield base, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()
