"""A client that disconnects mid-solve cancels the solve and kills its sandboxed tool run.

The slow-thinking design (see fake_server_app.py) runs a python tool whose program sleeps for a
minute in the real process sandbox. Hanging up while it runs must leave no process of that run
behind (the sandbox's fork helper itself stays: it serves the next runs). The server's tool
time limit is a minute, so only the cancellation can end the program within the test.
"""

from __future__ import annotations

import time

import httpx
import psutil
from fake_server_app import SANDBOX_SLEEP


def sandbox_runs(server) -> list[psutil.Process]:
    """Processes of sandbox runs: descendants of the server's fork helper(s)."""
    try:
        top = psutil.Process(server.proc.pid).children()
    except psutil.NoSuchProcess:
        return []
    helpers = [p for p in top if "agentrt.tools.sandbox" in " ".join(_cmdline(p))]
    runs = []
    for helper in helpers:
        try:
            runs += helper.children(recursive=True)
        except psutil.NoSuchProcess:
            pass
    return [p for p in runs if _alive(p)]


def tree(server) -> str:
    lines = []
    for p in psutil.Process(server.proc.pid).children(recursive=True):
        try:
            lines.append(f"{p.pid} ppid={p.ppid()} {p.status()} {' '.join(_cmdline(p))[-60:]}")
        except psutil.Error as e:
            lines.append(f"{p.pid} {e!r}")
    return "\n".join(lines)


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def slow_solve(server) -> str:
    resp = server.client(timeout=180).chat.completions.create(
        model="agentrt-slow", messages=[{"role": "user", "content": "Compute 123*456 - 789"}])
    return resp.choices[0].message.content


def test_disconnect_kills_the_running_sandbox_tool(server):
    assert slow_solve(server) == "55299"  # starts the sandbox's fork helper (slow under load)
    body = {"model": "agentrt-slow", "stream": True,
            "messages": [{"role": "user", "content": f"Compute 123*456 - 789 {SANDBOX_SLEEP}"}]}
    with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body,
                      headers=server.headers(), timeout=60) as r:
        assert r.status_code == 200
        trace_id = r.headers["x-agentrt-trace-id"]
        seen, lines = [], r.iter_lines()  # held: dropping the iterator would close the stream
        for line in lines:  # read progress until the tool's program has been written
            seen.append(line)
            if line.startswith("data: {") and "tool_input]" in line:
                break
        else:
            raise AssertionError("the stream ended before the tool ran:\n" + "\n".join(seen))
        deadline = time.monotonic() + 60
        while not sandbox_runs(server):  # the program is running in the sandbox now
            assert time.monotonic() < deadline, f"the sandboxed program never started: {tree(server)}"
            time.sleep(0.05)
    hung_up = time.monotonic()  # leaving the block closed the connection
    gone = 0
    while gone < 10:  # ten looks in a row without a process of the run
        gone = gone + 1 if not sandbox_runs(server) else 0
        assert time.monotonic() - hung_up < 10, "a sandbox process outlived the disconnect"
        time.sleep(0.05)
    with server.store() as store:
        while (trace := store.get_trace(trace_id)).status == "running":
            assert time.monotonic() - hung_up < 10
            time.sleep(0.1)
    assert trace.status == "cancelled"
    for step in (s for s in trace.steps if s.kind == "tool"):  # killed, never finished
        assert step.status != "ok" or step.outputs.get("killed_reason") == "cancelled"
    assert slow_solve(server) == "55299"  # the sandbox still serves the next solve
