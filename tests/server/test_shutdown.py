"""SIGTERM while solves run longer than the shutdown grace: a real uvicorn server, real sandbox.

Two slow solves hold sandboxed programs that sleep far past the grace, one answered as JSON and
one streamed, both with an Idempotency-Key; a fast solve is blocked in a backend call that
cannot be interrupted. After SIGTERM the server must end them inside the grace: plain requests
get 503, the stream an error event and [DONE], every trace reads `cancelled` (the blocked one
marked by the server itself), the claims are released, the server and its sandboxed programs
exit, and its log holds no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import httpx
import psutil
from fake_server_app import SANDBOX_SLEEP
from server_harness import HERE, launch, stop
from sqlalchemy import select

GRACE_S = 8
PROBLEM = f"Compute 123*456 - 789 {SANDBOX_SLEEP}"


def _tool_running(server, n: int, timeout: float = 120) -> list[str]:
    """Ids of `n` traces whose tool program has been written (and so is running)."""
    with server.store() as store:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ids = [t.id for t in store.list_traces()
                   if any(s.name == "tool_input" for s in store.get_trace(t.id).steps)]
            if len(ids) >= n:
                return ids
            assert server.proc.poll() is None
            time.sleep(0.2)
    raise AssertionError("the solves never reached their tool runs")


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def test_sigterm_cancels_long_solves_within_the_grace(tmp_path):
    cmd = [sys.executable, "-m", "uvicorn", "--factory", "fake_server_app:make_app", "--app-dir",
           str(HERE), "--log-level", "info", "--timeout-graceful-shutdown", str(GRACE_S)]
    server = launch(tmp_path, cmd=cmd, env={"AGENTRT_SERVER_SHUTDOWN_GRACE_S": str(GRACE_S),
                                            "AGENTRT_LIMIT_TOOL_TIMEOUT_S": "60"})
    results: dict[str, object] = {}
    body = {"model": "agentrt-slow", "messages": [{"role": "user", "content": PROBLEM}]}
    url = f"{server.url}/v1/chat/completions"

    def plain() -> None:
        r = httpx.post(url, json=body, timeout=120,
                       headers={**server.headers(), "Idempotency-Key": "shutdown-plain"})
        results["plain"] = (r.status_code, r.json(), time.monotonic())
        results["plain_headers"] = r.headers

    def streamed() -> None:
        with httpx.stream("POST", url, json={**body, "stream": True}, timeout=120,
                          headers={**server.headers(), "Idempotency-Key": "shutdown-stream"}
                          ) as r:
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
        results["stream"] = (r.status_code, lines, time.monotonic())

    def blocked() -> None:
        r = httpx.post(url, timeout=120, headers=server.headers(), json={
            "model": "agentrt-fast", "messages": [{"role": "user", "content": "2+2? [sleep=60]"}]})
        results["blocked"] = (r.status_code, r.json(), time.monotonic())

    threads = [threading.Thread(target=f) for f in (plain, streamed, blocked)]
    try:
        for t in threads:
            t.start()
        trace_ids = _tool_running(server, 2)
        time.sleep(0.5)
        family = [psutil.Process(pid) for pid in server.children()]
        os.kill(server.proc.pid, signal.SIGTERM)
        asked = time.monotonic()
        for t in threads:
            t.join(GRACE_S + 30)
        server.proc.wait(GRACE_S + 30)
        exited = time.monotonic() - asked
    finally:
        stop(server)

    status, error, at = results["plain"]
    assert status == 503 and error["error"]["code"] == "shutting_down", error
    assert at - asked < GRACE_S
    headers = results["plain_headers"]  # a restarted server or another worker takes a retry
    assert headers["x-should-retry"] == "true" and headers["retry-after"] == "1"
    status, error, at = results["blocked"]
    assert status == 503 and error["error"]["code"] == "shutting_down" and at - asked < GRACE_S
    status, lines, at = results["stream"]
    assert status == 200 and lines[-1] == "data: [DONE]" and at - asked < GRACE_S
    assert json.loads(lines[-2][6:])["error"]["code"] == "shutting_down"
    assert exited < GRACE_S + 5, f"the server took {exited:.1f} s to exit"
    deadline = time.monotonic() + 10  # the sandbox helper leaves once its parent has gone
    while [p for p in family if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in family if _alive(p)]

    from agentrt.store import TraceStore
    from agentrt.store.idempotency import IdempotencyKey

    with TraceStore(server.db_url) as store:
        assert {store.get_trace(t).status for t in trace_ids} == {"cancelled"}
        [fast] = store.list_traces(status="cancelled", tags={"api_model": "agentrt-fast"})
        assert "shut down" in fast.error and store.count_traces(status="running") == 0
        with store.engine.connect() as conn:
            claims = conn.execute(select(IdempotencyKey.__table__)).all()
        assert claims == []  # released: a retry runs afresh
    log = server.log.read_text()
    assert "Traceback" not in log and "cannot schedule new futures" not in log, log
