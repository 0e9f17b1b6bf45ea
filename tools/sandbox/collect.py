"""Collecting one sandbox run: capped streaming of its output, its deadline and its status.

`RunHandle.wait` reads stdout, stderr, the JSON side result and the monitor's status with one
selector, keeps at most `output_bytes` of each stream, and kills the run when it writes more
than `output_kill_bytes` in total (stdout, stderr and the side result together), more than
`_RESULT_CAP` on the side result alone, or outlives its deadline (the monitor's own timer plus
a grace); it turns everything into a `SandboxResult`. `kill` may be called from any thread.
Killing the monitor through its pidfd ends the run's init (parent-death signal), which as the
init of its pid namespace takes every other process of the run along; without a pid
namespace, the fork helper (a child subreaper) kills the processes the init leaves behind.
This module trusts nothing the run wrote: output is decoded with replacement; the side
result is kept only when the caller asked for one, size-capped, and taken only as a value or
one of the runner's fixed error codes (the host words the message). Exit status, reasons,
syntax errors and memory figures come from the monitor's status alone, which the program
cannot reach. It knows nothing about how runs are started.
"""

from __future__ import annotations

import json
import math
import os
import selectors
import signal
import threading
import time
from typing import Callable

from agentrt.core.errors import ToolExecutionError
from agentrt.tools.sandbox.runner import RESULT_ERRORS
from agentrt.tools.sandbox.types import SandboxLimits, SandboxResult

__all__ = ["RunHandle"]

_GRACE_S = 1.0  # host deadline past the monitor's, for setup and for a monitor that hangs
_DRAIN_S = 0.5  # how long to keep reading pipes once the status has arrived
_RESULT_CAP = 2 * 1024 * 1024
_STATUS_CAP = 64 * 1024
_RESULT_MESSAGES = {
    "missing": "the program did not define {name!r}",
    "not_json": "the value of {name!r} is not JSON-serializable",
    "too_large": f"the value of {{name!r}} is too large (over {1 << 20} bytes as JSON)",
}


class RunHandle:
    """A started run. Call `wait()` exactly once (it is idempotent) and `kill()` from anywhere."""

    def __init__(self, *, pid: int, pidfd: int, fds: list[int], limits: SandboxLimits, tier: str,
                 on_done: Callable[[], None], result_name: str | None = None) -> None:
        self.pid = pid
        self.result_name = result_name  # the value asked for ("" for a worker's answer), or None
        self._pidfd = pidfd
        self._out, self._err, self._res, self._status = fds
        self.limits = limits
        self.tier = tier
        self._on_done = on_done
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._reason: str | None = None
        self._closed = False
        self._result: SandboxResult | None = None

    def kill(self, reason: str = "cancelled") -> None:
        """Kill the whole run now; `reason` becomes its `killed_reason` (first one wins)."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            if self._closed:
                return
            try:
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)
            except (ProcessLookupError, OSError):
                pass
            if self.tier == "process":  # no pid namespace: also reach the run's process group
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except OSError:
                    pass

    def _pump(self) -> dict[int, bytearray]:
        bufs = {fd: bytearray() for fd in (self._out, self._err, self._res, self._status)}
        caps = {self._out: self.limits.output_bytes, self._err: self.limits.output_bytes,
                self._res: _RESULT_CAP if self.result_name is not None else 0,
                self._status: _STATUS_CAP}
        self.truncated = False
        total = side = 0  # bytes the program wrote: all three streams, and the value channel
        sel = selectors.DefaultSelector()
        for fd in bufs:
            sel.register(fd, selectors.EVENT_READ)
        deadline = self._t0 + self.limits.timeout_s + _GRACE_S
        stop_at = float("inf")
        try:
            while sel.get_map():
                now = time.monotonic()
                if now >= stop_at:
                    break
                if now >= deadline:
                    self.kill("timeout")
                    deadline, stop_at = float("inf"), now + 2.0
                for key, _ in sel.select(max(0.0, min(deadline, stop_at) - now)):
                    data = os.read(key.fd, 65536)
                    if not data:
                        sel.unregister(key.fd)
                        if key.fd == self._status:
                            stop_at = min(stop_at, time.monotonic() + _DRAIN_S)
                        continue
                    buf, room = bufs[key.fd], caps[key.fd] - len(bufs[key.fd])
                    buf += data[:max(0, room)]
                    if key.fd == self._status:
                        continue
                    total += len(data)
                    if key.fd == self._res:
                        side += len(data)
                    elif len(data) > room:
                        self.truncated = True
                    if total > self.limits.output_kill_bytes or side > _RESULT_CAP:
                        self.kill("output_limit")
        finally:
            sel.close()
        return bufs

    def wait(self) -> SandboxResult:
        """Collect the run (blocking) and release its resources.

        Raises:
            ToolExecutionError: the sandbox could not set the run up.
        """
        if self._result is not None:
            return self._result
        try:
            bufs = self._pump()
        except BaseException:
            self.kill("cancelled")
            raise
        finally:
            self._close()
        self._result = self._build(bufs)
        return self._result

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for fd in (self._out, self._err, self._res, self._status, self._pidfd):
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._on_done()

    def _build(self, bufs: dict[int, bytearray]) -> SandboxResult:
        try:
            status = json.loads(bytes(bufs[self._status]) or b"{}")
        except (ValueError, RecursionError):
            status = {}
        if not isinstance(status, dict):
            status = {}
        if status.get("setup_error"):
            raise ToolExecutionError(f"sandbox setup failed: {status['setup_error']}")
        side = {} if self.result_name is None else _parse_side(bytes(bufs[self._res]), self.result_name)
        memory = status.get("memory") or {}
        res = SandboxResult(
            stdout=bytes(bufs[self._out]).decode("utf-8", "replace"),
            stderr=bytes(bufs[self._err]).decode("utf-8", "replace"),
            exit_code=status.get("exit_code"),
            signal=status.get("signal"),
            timed_out=bool(status.get("timed_out")) or self._reason == "timeout",
            duration_s=round(time.monotonic() - self._t0, 4),
            cpu_s=status.get("cpu_s"),
            max_rss_mb=round(status["max_rss_kb"] / 1024, 2) if status.get("max_rss_kb") else None,
            truncated=self.truncated,
            tier=self.tier,
            syntax_error=status.get("syntax_error"),
            memory_limit_scope="run" if memory.get("scope") == "run" else "process",
            memory_peak_mb=memory.get("peak_mb"),
            **side,
        )
        res.killed_reason = self._reason_for(res, memory)
        return res

    def _reason_for(self, res: SandboxResult, memory: dict) -> str | None:
        """Only what the host observed: its own kills, the monitor's timer, the wait status, the
        cgroup's counters, the CPU time the kernel accounted. Never the program's output."""
        if self._reason is not None:
            return self._reason
        if res.timed_out:
            return "timeout"
        if memory.get("oom_kills") or (memory.get("limit_hits") and res.exit_code):
            return "memory_limit"
        sig = res.signal
        rlimit_cpu = max(1, math.ceil(self.limits.effective_cpu_s()))  # what `child.set_limits` sets
        if sig in (signal.SIGXCPU, signal.SIGKILL) and (res.cpu_s or 0) >= 0.9 * rlimit_cpu:
            return "cpu_limit"  # the kernel's CPU accounting agrees: not a signal the program sent itself
        if sig == signal.SIGXFSZ:
            return "file_size_limit"
        if sig is not None:
            return "signal"
        return None


def _parse_side(raw: bytes, name: str) -> dict:
    """Read the value channel (written by the program's process: untrusted)."""
    if not raw:
        return {"result_error": f"the program wrote no value of {name!r}"} if name else {}
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return {"result_error": "the result is not valid JSON"}
    if isinstance(doc, dict) and set(doc) == {"value"}:
        return {"result": doc["value"]}
    if isinstance(doc, dict) and set(doc) == {"error"} and doc["error"] in RESULT_ERRORS:
        return {"result_error": _RESULT_MESSAGES[doc["error"]].format(name=name or "answer")}
    return {"result_error": "the result channel holds no valid result"}
