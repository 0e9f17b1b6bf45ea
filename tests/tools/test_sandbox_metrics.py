"""Sandboxed runs are counted and timed by how they ended (`agentrt_sandbox_runs_total`)."""

from __future__ import annotations

import asyncio

from agentrt.core import metrics
from agentrt.tools.sandbox import SandboxLimits


def runs(status: str) -> float:
    labels = {"status": status}
    return metrics.REGISTRY.get_sample_value("agentrt_sandbox_runs_total", labels) or 0.0


def timed(status: str) -> tuple[float, float]:
    labels = {"status": status}
    get = metrics.REGISTRY.get_sample_value
    return (get("agentrt_sandbox_run_duration_seconds_count", labels) or 0.0,
            get("agentrt_sandbox_run_duration_seconds_sum", labels) or 0.0)


def test_runs_count_by_status_sync_and_async(sandbox):
    before = {s: runs(s) for s in ("ok", "exit_nonzero", "timeout")}
    count, total = timed("timeout")
    assert sandbox.run("print(1)").ok
    assert asyncio.run(sandbox.arun("raise SystemExit(3)")).exit_code == 3
    slow = sandbox.run("while True: pass", limits=SandboxLimits(timeout_s=0.5, cpu_s=30))
    assert slow.killed_reason == "timeout"
    assert {s: runs(s) - before[s] for s in before} == {"ok": 1, "exit_nonzero": 1, "timeout": 1}
    after = timed("timeout")
    assert after[0] == count + 1 and after[1] - total >= 0.5
