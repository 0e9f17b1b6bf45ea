"""Work nobody owns: kill -9 of a CLI solve and of a server, then a new process finds the traces
interrupted and resumes them.

The CLI runs as a user runs it (`agentrt.cli.main` in a subprocess) with one addition: the
scripted backend of `fake_server_app` is registered as its fake backend, so its replies (and
`[sleep=S]` delays) reach the real runtime, store (SQLite, and the local PostgreSQL for the
CLI), checkpointer and sandboxed tools. The server is the real uvicorn app of the other server
tests. Each process is killed with SIGKILL, so nothing of its own gets to mark its traces.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from helpers import parametrize_backends
from server_harness import HERE, REPO, launch

from agentrt.store import TraceStore

PROBLEM = "Compute 123*456 - 789 [sleep=1]"
LAUNCH = ("import sys; sys.path.insert(0, sys.argv.pop(1)); from agentrt.llm import base; "
          "base.BACKENDS['fake'] = 'fake_server_app:ScriptedBackend'; "
          "from agentrt.cli import main; main(sys.argv[1:])")


def cli_env(tmp_path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    env.update({"AGENTRT_HOME": str(tmp_path / "cli-home"), "AGENTRT_DATABASE_URL": db_url,
                "AGENTRT_BACKEND": "fake", "AGENTRT_MODEL": "fake-echo"})
    return env


def agentrt(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", LAUNCH, str(HERE), *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    proc = agentrt(args, env)
    out, err = proc.communicate(timeout=timeout)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def wait_for_steps(db_url: str, n: int, alive, timeout: float = 120) -> str:
    """The id of the first trace that has `n` steps, while `alive()` holds."""
    with TraceStore(db_url) as store:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert alive(), "the process ended before it could be killed"
            for t in store.list_traces(limit=5):
                if len(store.get_trace(t.id).steps) >= n:
                    return t.id
            time.sleep(0.2)
    pytest.fail(f"no trace reached {n} steps")


def interrupted(env: dict[str, str]) -> dict[str, dict]:
    listed = run(["traces", "list", "--status", "interrupted", "--json"], env)
    assert listed.returncode == 0, listed.stderr
    return {t["id"]: t for t in json.loads(listed.stdout)}


def pytest_generate_tests(metafunc):
    parametrize_backends(metafunc)  # `db_url`: a fresh SQLite file, then a PostgreSQL database


def test_a_killed_cli_solve_is_found_and_resumed_by_one_of_two_resumers(tmp_path, db_url):
    env = cli_env(tmp_path, db_url)
    solve = agentrt(["solve", PROBLEM, "--mode", "slow", "--json"], env)
    try:
        trace_id = wait_for_steps(db_url, 2, lambda: solve.poll() is None)
    finally:
        solve.send_signal(signal.SIGKILL)
        solve.wait(10)

    found = interrupted(env)
    assert found[trace_id]["status"] == "interrupted" and found[trace_id]["orphaned"] is True
    table = run(["traces", "list"], env | {"COLUMNS": "200"})
    assert "interrupted" in table.stdout and trace_id[:12] in table.stdout

    resumers = [agentrt(["traces", "resume", trace_id, "--json"], env) for _ in range(2)]
    results = [(p.wait(180), *p.communicate()) for p in resumers]
    wins = [json.loads(out) for rc, out, _ in results if rc == 0]
    refused = [err for rc, _, err in results if rc != 0]
    assert len(wins) == 1 and len(refused) == 1, results
    assert (wins[0]["answer"], wins[0]["status"]) == ("55299", "ok")
    assert len(refused[0].strip().splitlines()) == 1 and "error:" in refused[0]
    with TraceStore(db_url) as store:
        trace = store.get_trace(trace_id)
        assert (trace.status, trace.meta["resumes"]) == ("ok", 1)
        assert trace.llm_calls == sum(1 for s in trace.steps if s.kind == "llm")
    assert trace_id not in interrupted(env)


def test_a_killed_server_leaves_interrupted_traces_that_resume(tmp_path):
    import psutil

    server = launch(tmp_path / "server")
    client = server.client(timeout=120)
    errors: list[BaseException] = []

    def ask(model: str, text: str) -> None:
        try:
            client.chat.completions.create(model=model,
                                           messages=[{"role": "user", "content": text}])
        except Exception as e:  # the server dies under the request
            errors.append(e)

    asks = [threading.Thread(target=ask, args=("agentrt-slow", PROBLEM)),
            threading.Thread(target=ask, args=("agentrt-fast", "What is 17*23+5? [sleep=60]"))]
    for t in asks:
        t.start()
    try:
        slow_id = wait_for_steps(server.db_url, 2, lambda: server.proc.poll() is None)
        with TraceStore(server.db_url) as store:
            deadline = time.monotonic() + 60
            while store.count_traces() < 2 and time.monotonic() < deadline:
                time.sleep(0.1)
    finally:
        family = [server.proc.pid, *server.children()]
        for pid in family:  # the server and its sandboxed programs, nothing else
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        server.proc.wait(10)
    for t in asks:
        t.join(30)
    assert len(errors) == 2

    env = cli_env(tmp_path, server.db_url)
    found = interrupted(env)
    assert len(found) == 2 and slow_id in found
    fast_id = next(t for t in found if t != slow_id)
    refused = run(["traces", "resume", fast_id], env)
    assert refused.returncode == 2 and "no slow-thinking checkpoint" in refused.stderr
    resumed = run(["traces", "resume", slow_id, "--json"], env)
    assert resumed.returncode == 0, resumed.stderr
    assert (json.loads(resumed.stdout)["answer"], json.loads(resumed.stdout)["status"]) == (
        "55299", "ok")
    assert set(interrupted(env)) == {fast_id}
