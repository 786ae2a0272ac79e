"""The `senpos` command's arguments, inputs and exit codes, run as a real process; the server is the loopback one
of test_client_errors.py (the round trips against the senpos server are in test_client.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import senpos_client

from .loopback import loopback
from .test_client_errors import KEY, WRONG_KEY, senpos_like

CLI = [sys.executable, "-m", "senpos_client.cli"]


def senpos(*args: str, stdin: str | bytes = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("SENPOS_URL", "SENPOS_API_KEY")}
    data = stdin.encode() if isinstance(stdin, str) else stdin
    done = subprocess.run([*CLI, *args], input=data, capture_output=True, timeout=60, env={**base, **(env or {})})
    return subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())


def one_clear_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("senpos: ") and "Traceback" not in done.stderr, done.stderr
    return lines[0]


@pytest.fixture
def server():
    with loopback(senpos_like) as lb:
        yield lb


def test_version():
    done = senpos("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"senpos-client {senpos_client.__version__}"


def test_bad_invocations_end_in_one_line_with_the_usage_or_input_code(tmp_path):
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text('{"text": "fine"}\n{"text": "cut off\n', encoding="utf-8")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café crème\n".encode("latin-1"))
    cases = [
        (["sentiment", "--batch", "0", "x"], "", 2, "--batch: must be at least 1"),
        (["--timeout", "soon", "sentiment", "x"], "", 2, "--timeout: not a number"),
        (["sentiment", "--input", str(tmp_path / "missing.txt")], "", 2, "cannot read"),
        (["--url", "localhost:3000", "sentiment", "x"], "", 2, "not a usable senpos URL"),
        (["sentiment", "x", "--input", str(bad_jsonl)], "", 2, "not both"),
        (["sentiment"], "\n  \n", 2, "no texts in <stdin>"),
        (["sentiment", "--output", str(tmp_path / "no-dir" / "out.jsonl"), "x"], "", 2, "cannot write"),
        (["pos-tag", "--input", str(bad_jsonl)], "", 3, "bad.jsonl:2: not JSON"),
        (["sentiment", "--input", "-", "--format", "jsonl"], '{"txt": "x"}\n', 3, "<stdin>:1: expected an object"),
        (["pos-tag", "--input", "-", "--format", "jsonl"], '{"words": [1, 2]}\n', 3, '"words" list of strings'),
        (["sentiment", "--input", str(latin1)], "", 3, "not UTF-8"),
    ]
    for args, stdin, code, says in cases:
        done = senpos(*args, stdin=stdin, env={"SENPOS_URL": "http://127.0.0.1:9"})  # never reached
        assert (done.returncode, done.stdout) == (code, ""), (args, done.stderr)
        assert says in one_clear_line(done), (args, done.stderr)
    env_url = senpos("sentiment", "x", env={"SENPOS_URL": "http://exa mple"})
    assert env_url.returncode == 2 and "not a usable senpos URL" in one_clear_line(env_url)


def test_exit_codes_tell_refused_input_unavailable_server_and_missing_key_apart(server):
    env = {"SENPOS_URL": server.url, "SENPOS_API_KEY": KEY}
    for text, code in (("413", 3), ("400", 3), ("503", 4), ("500", 1)):
        done = senpos("--retries", "0", "sentiment", text, env=env)
        assert done.returncode == code and f"refused with {text}" in one_clear_line(done), (text, done.stderr)
        assert server.seen[-1].answer.headers["x-request-id"] in done.stderr  # the id to look up on the server
    not_senpos = senpos("--url", server.url + "/v2", "sentiment", "x", env=env)
    assert not_senpos.returncode == 4 and "senpos server" in one_clear_line(not_senpos)
    unreachable = senpos("--url", "http://127.0.0.1:9", "--retries", "0", "sentiment", "x")
    assert unreachable.returncode == 4 and "cannot connect" in one_clear_line(unreachable)

    wrong = senpos("sentiment", "x", env={**env, "SENPOS_API_KEY": WRONG_KEY})
    assert wrong.returncode == 2 and "SENPOS_API_KEY" in one_clear_line(wrong) and WRONG_KEY not in wrong.stderr
    missing = senpos("--url", server.url, "sentiment", "x")
    assert missing.returncode == 2 and "set SENPOS_API_KEY" in one_clear_line(missing)


def test_texts_from_standard_input_with_url_and_key_from_the_environment(server):
    env = {"SENPOS_URL": server.url, "SENPOS_API_KEY": KEY}
    piped = senpos("sentiment", stdin="\ufeffA wonderful film.\r\n\nDull.\n", env=env)
    assert piped.returncode == 0, piped.stderr
    assert [json.loads(row)["input"] for row in piped.stdout.splitlines()] == ["A wonderful film.", "Dull."]
    assert server.seen[-1].headers["authorization"] == f"Bearer {KEY}"
    assert server.seen[-1].body == {"texts": ["A wonderful film.", "Dull."]}

    dash = senpos("pos-tag", "--input", "-", "--format", "jsonl", stdin='{"words": ["我们", "好"]}\n{"text": "好"}\n',
                  env=env)
    assert dash.returncode == 0 and len(dash.stdout.splitlines()) == 2, dash.stderr
    assert server.seen[-1].body == {"texts": [["我们", "好"], "好"]}


def test_authentication_errors_name_the_commands_own_setting_not_the_sdks(server):
    """Issue 31.11: the CLI has no `api_key=`; its key comes from $SENPOS_API_KEY only."""
    missing = senpos("--url", server.url, "sentiment", "x")
    line = one_clear_line(missing)
    assert missing.returncode == 2 and "SENPOS_API_KEY" in line and "api_key" not in line, line
    wrong = senpos("--url", server.url, "sentiment", "x", env={"SENPOS_API_KEY": WRONG_KEY})
    line = one_clear_line(wrong)
    assert wrong.returncode == 2 and "SENPOS_API_KEY" in line and "api_key" not in line and WRONG_KEY not in line


def test_blank_lines_are_skipped_and_said_so(server, tmp_path):
    """Issue 31.11: blank input lines are left out, and standard error (and --help) says which."""
    env = {"SENPOS_URL": server.url, "SENPOS_API_KEY": KEY}
    piped = senpos("sentiment", stdin="A wonderful film.\n\n   \nDull.\n\n", env=env)
    assert piped.returncode == 0 and server.seen[-1].body == {"texts": ["A wonderful film.", "Dull."]}
    assert [json.loads(row)["input"] for row in piped.stdout.splitlines()] == ["A wonderful film.", "Dull."]
    assert piped.stderr.splitlines() == ["senpos: skipped 3 blank lines of <stdin> (lines 2, 3, 5); each result "
                                         "carries its input"], piped.stderr
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "好"}\n\n{"words": ["我们", "好"]}\n', encoding="utf-8")
    jsonl = senpos("pos-tag", "--input", str(src), env=env)
    assert jsonl.returncode == 0 and len(jsonl.stdout.splitlines()) == 2
    assert "skipped 1 blank line of" in jsonl.stderr and "(line 2)" in jsonl.stderr
    clean = senpos("sentiment", stdin="Fine.\nDull.\n", env=env)
    assert clean.returncode == 0 and clean.stderr == ""
    assert "Blank input lines are skipped" in " ".join(senpos("sentiment", "--help").stdout.split())


def test_global_options_work_after_the_subcommand_too(server):
    """Issue 31.11: `senpos sentiment --retries 0 ...` as well as `senpos --retries 0 sentiment ...`."""
    env = {"SENPOS_API_KEY": KEY}
    for args in (["--url", server.url, "--retries", "0", "sentiment", "503"],
                 ["sentiment", "--url", server.url, "--retries", "0", "503"],
                 ["sentiment", "503", "--retries=0", "--url", server.url, "--timeout", "30"]):
        before = len(server.seen)
        done = senpos(*args, env=env)
        assert done.returncode == 4 and "after 1 attempt" in one_clear_line(done), (args, done.stderr)
        assert len(server.seen) == before + 1, args  # no retry
    after = senpos("--retries", "5", "sentiment", "--retries", "0", "503", env={**env, "SENPOS_URL": server.url})
    assert after.returncode == 4 and "after 1 attempt" in after.stderr  # the one after the subcommand wins
    bad = senpos("sentiment", "--retries", "-1", "x", env=env)
    assert bad.returncode == 2 and "--retries: must be at least 0" in one_clear_line(bad)
