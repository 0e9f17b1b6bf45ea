"""`Sandbox`: run model-written Python (or a preloaded worker) in a confined, fresh process.

The caller's side of the sandbox. It starts the fork helper once (`python -I`, allowlisted
environment), hands it each run's descriptors, and collects the run: stdout and stderr capped
while streaming, a JSON side result, and the monitor's JSON status. Its own deadline kills a
run whose monitor did not end it in time; `RunHandle.kill` ends a run from any thread, and
`arun` kills the run when the awaiting task is cancelled, and `run` inside `cancel_on(event)`
(`agentrt.core.cancel`, re-exported here) kills it when the event is set. Thread-safe: one
lock guards only the short request/answer exchange with the helper; runs proceed in parallel. No signal handlers,
no `preexec_fn`, no pickle. This module knows nothing about particular tools.
"""

from __future__ import annotations

import asyncio
import atexit
import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agentrt.core import metrics
from agentrt.core.cancel import cancel_on, current_cancel
from agentrt.core.errors import SandboxUnavailableError, ToolExecutionError, ToolInputError
from agentrt.tools.sandbox import plan as plan_mod
from agentrt.tools.sandbox.collect import RunHandle
from agentrt.tools.sandbox.types import IsolationInfo, SandboxLimits, SandboxResult

__all__ = ["Sandbox", "isolation_info", "DEFAULT_PRELOAD", "cancel_on"]

log = logging.getLogger(__name__)

DEFAULT_PRELOAD = ("sympy", "agentrt.tools.sympy_worker")
_ENV_PASS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def _base_env() -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}
    env.update({k: "1" for k in _THREAD_VARS})
    env.update({k: os.environ[k] for k in _ENV_PASS if k in os.environ})
    return env


_CLAIMS = "/run/agentrt-sandbox-uids"  # one lock file per uid range (root only: the tier is)


class _UidPool:
    """Distinct uids for concurrent runs of this process (namespaces tier), shared by every
    `Sandbox` in it.

    The process owns one range of 4096 uids, claimed on first use: the range its pid points
    at, or the next one no other process holds, held through an exclusive lock on a file in
    `_CLAIMS` for as long as the process lives. A forked child claims a range of its own.
    Where no lock file can be made, the range is the one the pid points at.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._free = list(range(4095, -1, -1))
        self._start: int | None = None
        self._hold: int | None = None

    @property
    def _base(self) -> int:
        if self._start is None:
            self._start = plan_mod.UID_BASE + (self._claim() << 12)
        return self._start

    def _claim(self) -> int:
        first = os.getpid() & 0xFFF
        if os.geteuid() != 0:
            return first
        try:
            os.makedirs(_CLAIMS, mode=0o700, exist_ok=True)
            for i in range(4096):
                index = (first + i) & 0xFFF
                fd = os.open(os.path.join(_CLAIMS, str(index)),
                             os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._hold = fd
                return index
        except OSError:
            pass
        return first

    def take(self) -> int:
        with self._lock:
            if not self._free:
                raise SandboxUnavailableError("too many concurrent sandbox runs (4096)")
            return self._base + self._free.pop()

    def give(self, uid: int) -> None:
        with self._lock:
            self._free.append(uid - self._base)

    def after_fork(self) -> None:
        """In a forked child: forget the parent's range (its lock stays with the parent)."""
        if self._hold is not None:
            try:
                os.close(self._hold)
            except OSError:
                pass
        self._reset()


_UIDS = _UidPool()
os.register_at_fork(after_in_child=_UIDS.after_fork)


class Sandbox:
    """A pool-free sandbox: every run is a fresh process forked from a pristine helper.

        >>> sb = Sandbox()
        >>> sb.run("print(6 * 7)").stdout  # doctest: +SKIP
        '42\\n'

    Args:
        preload: modules the helper imports once, so runs start with them loaded.
        strict: refuse to run (SandboxUnavailableError) without network isolation.
        limits: default limits of runs that do not pass their own.
        start_timeout_s: how long to wait for the helper's start-up probe.
        max_tier: the strongest tier to try ("namespaces", "userns", "process"); weaker ones
            are the fallback. Lower it to test or to match another machine.
        use_landlock, use_seccomp, use_cgroup: allow these layers where the kernel has them
            (`use_cgroup`: a memory cgroup per run).
        allow_bare: allow the bare tier, the last resort: the process tier with neither
            seccomp nor Landlock (the program then has the caller's uid, files and network).
            Where it is the only one that works it is used with a logged warning and a note in
            the isolation report; False refuses it (SandboxUnavailableError at start).
    """

    def __init__(self, *, preload: tuple[str, ...] = DEFAULT_PRELOAD, strict: bool = False,
                 limits: SandboxLimits | None = None, start_timeout_s: float = 60.0,
                 max_tier: str = "namespaces", use_landlock: bool = True, use_seccomp: bool = True,
                 use_cgroup: bool = True, allow_bare: bool = True) -> None:
        if max_tier not in plan_mod.TIERS:
            raise ValueError(f"max_tier must be one of {plan_mod.TIERS}, not {max_tier!r}")
        self.max_tier = max_tier
        self.allow_bare = allow_bare
        self.use_landlock = use_landlock
        self.use_seccomp = use_seccomp
        self.use_cgroup = use_cgroup
        self.preload = tuple(preload)
        self.strict = strict
        self.limits = limits or SandboxLimits()
        self.start_timeout_s = start_timeout_s
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._info: IsolationInfo | None = None
        self._uids = _UIDS
        self._executor = ThreadPoolExecutor(max_workers=64, thread_name_prefix="sandbox")

    _shared: "Sandbox | None" = None
    _shared_lock = threading.Lock()

    @classmethod
    def shared(cls) -> "Sandbox":
        """The process-wide default sandbox (started lazily, closed at exit)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
                atexit.register(cls._shared.close)
            return cls._shared

    # --- helper process -------------------------------------------------------------------

    def _spawn(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        root = str(Path(__file__).resolve().parents[2])
        boot = ("import sys; sys.path.append(%r); from agentrt.tools.sandbox.zygote import main; sys.exit(main())" % root)
        cmd = [sys.executable, "-I", "-c", boot, "--fd", str(child.fileno()), "--preload", ",".join(self.preload),
               "--max-tier", self.max_tier]
        cmd += ["--no-landlock"] * (not self.use_landlock) + ["--no-seccomp"] * (not self.use_seccomp)
        cmd += ["--no-cgroup"] * (not self.use_cgroup) + ["--no-bare"] * (not self.allow_bare)
        try:
            self._proc = subprocess.Popen(
                cmd, pass_fds=[child.fileno()], env=_base_env(), cwd="/", stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        finally:
            child.close()
        parent.settimeout(self.start_timeout_s)
        try:
            hello = json.loads(parent.recv(1 << 16) or b"{}")
        except (OSError, ValueError) as e:
            hello = {"ready": False, "error": f"no answer from the sandbox helper: {e}"}
        if not hello.get("ready"):
            parent.close()
            self._reap_helper()
            raise SandboxUnavailableError(f"sandbox helper failed to start: {hello.get('error', 'unknown')}")
        parent.settimeout(30.0)
        self._sock = parent
        self._info = IsolationInfo.model_validate(hello["info"])
        if self._info.bare:
            log.warning("sandbox runs on the bare process tier: no namespaces, seccomp or "
                        "Landlock; programs run with this user's files and network (%s)",
                        "; ".join(self._info.notes))

    def _reap_helper(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def start(self) -> IsolationInfo:
        """Start the helper if needed and return the active isolation report (idempotent)."""
        with self._lock:
            if self._sock is None:
                self._spawn()
            assert self._info is not None
            return self._info

    @property
    def info(self) -> IsolationInfo:
        """The isolation report (starts the helper on first use)."""
        return self.start()

    def close(self) -> None:
        """Stop the helper. Runs in flight end when their monitors lose it."""
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._reap_helper()

    def _request(self, req: dict, fds: list[int]) -> tuple[int, int]:
        """Send one run to the helper; return (monitor pid, pidfd). Restarts a dead helper once."""
        for attempt in (0, 1):
            with self._lock:
                if self._sock is None:
                    self._spawn()
                try:
                    socket.send_fds(self._sock, [json.dumps(req).encode()], fds)
                    msg, got, _, _ = socket.recv_fds(self._sock, 1 << 16, 1)
                    if not msg:
                        raise ConnectionError("sandbox helper closed its socket")
                except OSError:
                    self._sock.close()
                    self._sock = None
                    self._reap_helper()
                    if attempt:
                        raise SandboxUnavailableError("the sandbox helper died twice in a row") from None
                    continue
            answer = json.loads(msg)
            if "error" in answer:
                raise ToolExecutionError(f"sandbox refused the run: {answer['error']}")
            return int(answer["pid"]), got[0]
        raise AssertionError("unreachable")

    # --- runs -----------------------------------------------------------------------------

    def start_run(self, code: str | None = None, *, entry: str = "python", args: dict | None = None,
                  stdin: str | bytes | None = None, limits: SandboxLimits | None = None,
                  result_var: str | None = None) -> RunHandle:
        """Start a run and return its handle at once (see `run` for the arguments)."""
        info = self.start()
        if self.strict and not info.network_isolated:
            raise SandboxUnavailableError(f"strict sandbox: tier {info.tier!r} has no network isolation")
        limits = limits or self.limits
        if entry == "python" and not isinstance(code, str):
            raise ToolInputError("code must be a string")
        raw_stdin = stdin.encode("utf-8", "surrogateescape") if isinstance(stdin, str) else (stdin or b"")
        if len(raw_stdin) > limits.stdin_bytes:
            raise ToolInputError(f"stdin is {len(raw_stdin)} bytes; the limit is {limits.stdin_bytes}")
        job = {"entry": entry, "code": code, "args": args or {}, "result_var": result_var}
        workdir = tempfile.mkdtemp(prefix="agentrt-run-") if info.tier == "process" else None
        job["env"] = {**_base_env(), "HOME": workdir or "/tmp", "TMPDIR": workdir or "/tmp", "USER": "sandbox"}
        uid = self._uids.take() if info.tier == "namespaces" else None
        pipes = [os.pipe() for _ in range(4)]
        sent = [_memfd(json.dumps(job).encode()), _memfd(raw_stdin)] + [w for _, w in pipes]
        try:
            pid, pidfd = self._request({"uid": uid, "workdir": workdir, "limits": limits.to_wire()}, sent)
        except BaseException:
            for r, _ in pipes:
                os.close(r)
            self._release(uid, workdir)
            raise
        finally:
            for fd in sent:
                os.close(fd)
        return RunHandle(pid=pid, pidfd=pidfd, fds=[r for r, _ in pipes], limits=limits, tier=info.tier,
                         on_done=lambda: self._release(uid, workdir),
                         result_name=(result_var or None) if entry == "python" else "")

    def _release(self, uid: int | None, workdir: str | None) -> None:
        if uid is not None:
            self._uids.give(uid)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    def run(self, code: str | None = None, **kwargs: Any) -> SandboxResult:
        """Run a program (entry "python") or a preloaded worker ("module:function") and wait.

        Args:
            code: the program text (entry "python").
            **kwargs: entry, args (worker input), stdin, limits (SandboxLimits), result_var
                (name of a global whose JSON value is returned as `result`).

        Returns:
            The run's result; a failing program is a result, not an exception.

        Raises:
            ToolInputError: bad arguments (stdin too large, code not a string).
            SandboxUnavailableError: strict mode without network isolation, or no helper.
            ToolExecutionError: the sandbox itself failed to set the run up.
        """
        handle = self.start_run(code, **kwargs)
        cancel = current_cancel()
        if cancel is None:
            return _counted(handle.wait())
        finished = threading.Event()

        def kill_on_cancel() -> None:  # the run ends first in the normal case
            while not finished.is_set():
                if cancel.wait(_CANCEL_POLL_S):
                    handle.kill("cancelled")
                    return

        threading.Thread(target=kill_on_cancel, name="sandbox-cancel", daemon=True).start()
        try:
            return _counted(handle.wait())
        finally:
            finished.set()

    async def arun(self, code: str | None = None, **kwargs: Any) -> SandboxResult:
        """Async `run`. Cancelling the awaiting task kills the run's whole process tree."""
        loop = asyncio.get_running_loop()
        starting = loop.run_in_executor(self._executor, lambda: self.start_run(code, **kwargs))
        try:
            handle = await asyncio.shield(starting)
        except asyncio.CancelledError:
            try:
                handle = await starting
            except Exception:  # noqa: BLE001 - nothing started, nothing to kill
                raise asyncio.CancelledError() from None
            handle.kill("cancelled")
            _counted(await loop.run_in_executor(self._executor, handle.wait))
            raise
        waiting = loop.run_in_executor(self._executor, lambda: _counted(handle.wait()))
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            handle.kill("cancelled")
            await asyncio.wait([waiting])
            raise


def _counted(result: SandboxResult) -> SandboxResult:
    """Count a finished run in `agentrt_sandbox_runs_total` and its duration histogram."""
    status = metrics.sandbox_status(result.ok, result.timed_out, result.killed_reason)
    metrics.SANDBOX_RUNS.labels(status).inc()
    metrics.SANDBOX_LATENCY.labels(status).observe(result.duration_s)
    return result


def _memfd(data: bytes) -> int:
    fd = os.memfd_create("sandbox", os.MFD_CLOEXEC)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


_CANCEL_POLL_S = 0.05


def isolation_info() -> IsolationInfo:
    """The isolation tier active on this machine (starts the shared sandbox's helper)."""
    return Sandbox.shared().start()
