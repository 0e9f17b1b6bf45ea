"""One run's process tree: monitor (outside) -> init (confined, pid 1) -> program (confined).

The fork helper forks the MONITOR per run. The monitor starts a session, makes the run's
memory cgroup (where the plan has one), enters new namespaces and forks the INIT, which joins
the cgroup, confines itself (`child.confine`), reports on the "ready" pipe, compiles the
program, forks the PROGRAM (so the model's code is never pid 1, which the kernel shields from
signals such as SIGXCPU), reaps orphans until the program exits, and reports the program's
status and resource use on the same pipe. The monitor enforces the wall timeout by killing the
init's process group and the init (the kernel then kills everything left in the pid
namespace), reads the cgroup's counters, removes it, and writes the run's final status as one
JSON document to the status descriptor. Without a pid namespace the init is a child subreaper,
so every process of the run stays below it; what it leaves behind when it dies goes to the
fork helper (a subreaper too), which kills it.

The program must not be able to speak for the sandbox: the init installs no signal handler
(so signals from inside its pid namespace do not reach it), is not dumpable (so the program,
under the same uid, cannot open its descriptors or memory through /proc), and holds the ready
pipe and the compile result where the program never ran. The status descriptor exists only
in the monitor.

Descriptors handed in per run, in order: job (read-only JSON), stdin, stdout, stderr, side
result, status. This module knows nothing about the host side of the protocol.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import socket
import time
from typing import NoReturn

from agentrt.tools.sandbox import cgroup, child, linux, runner

__all__ = ["launch"]

_NS = linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWNET | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
_SETUP_TIMEOUT_S = 10.0
_SETUP_FAILED = 121
_READY, _LIFE = 4, 5  # descriptor numbers inside the init
_KERNEL_MB = 16  # a run's page tables, stacks, pipe buffers and small files, on top of memory_mb


def _enter_namespaces(plan: dict) -> None:
    if plan["tier"] == "namespaces":
        linux.unshare(_NS)
    elif plan["tier"] == "userns":
        uid, gid = os.geteuid(), os.getegid()
        linux.unshare(linux.CLONE_NEWUSER | _NS)
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)


def _place_fds(job_fd: int, *keep: int) -> dict:
    """Read the job; put stdin/out/err/result on 0-3 and ready/lifeline on 4-5; close the rest."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in keep]
    with os.fdopen(os.dup(job_fd), "rb") as f:
        job = json.loads(f.read())
    for target, fd in enumerate(high):
        os.dup2(fd, target)
    os.closerange(6, 1 << 16)
    return job


def _say(obj: dict) -> None:
    os.write(_READY, (json.dumps(obj) + "\n").encode())


def _quiet_init() -> None:
    """No signal handlers in the init: the kernel then drops every signal sent to a namespace's
    init from inside it, so the program cannot stop the init (Python's SIGINT handler would
    let it raise KeyboardInterrupt there)."""
    for sig in signal.valid_signals():
        if callable(signal.getsignal(sig)):
            signal.signal(sig, signal.SIG_DFL)


def _init_main(plan: dict, limits: dict, fds: list[int], ready_w: int, life_r: int,
               join_fd: int | None) -> NoReturn:
    """The confined init: confine, report, compile, fork the program, reap, report its status."""
    ready = ready_w
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        if select.select([life_r], [], [], 0)[0]:  # the monitor died before the line above
            os._exit(_SETUP_FAILED)
        linux.set_child_subreaper()  # without a pid namespace: the program's orphans stay ours
        if join_fd is not None:  # into the run's cgroup before anything of the run is charged
            os.write(join_fd, b"0")
            os.close(join_fd)
        os.setpgid(0, 0)  # a group of its own, so the monitor can kill the whole run at once
        _quiet_init()
        with open("/proc/self/statm") as f:
            baseline_vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        job = _place_fds(fds[0], *fds[1:], ready_w, life_r)
        ready = _READY
        applied = child.confine(plan, limits, baseline_vm)
        linux.set_dumpable(False)  # the program, same uid, must not reach this process via /proc
        if select.select([_LIFE], [], [], 0)[0]:  # the monitor died while the signal was unset
            os._exit(_SETUP_FAILED)
        os.close(_LIFE)
        _say({"ok": True, "applied": applied})
    except BaseException as e:  # noqa: BLE001 - report any setup failure, never run the job
        msg = str(e) if isinstance(e, child.SetupError) else f"{type(e).__name__}: {e}"
        try:
            os.write(ready, (json.dumps({"ok": False, "error": msg}) + "\n").encode())
        finally:
            os._exit(_SETUP_FAILED)
    code, syntax_error = runner.compile_job(job)  # before the program exists: its report is ours
    if code is None and job["entry"] == "python":
        _say({"status": 1 << 8, "cpu_s": 0.0, "max_rss_kb": 0, "syntax_error": syntax_error})
        os._exit(0)
    pid = os.fork()
    if pid == 0:
        os.close(_READY)
        try:
            status = runner.run_job(job, code)
        except BaseException:  # noqa: BLE001
            status = 1
        runner.finish(status)
    for fd in range(4):
        os.close(fd)
    while True:
        try:
            got, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if got == pid:
            break
    _say({"status": st, "cpu_s": round(ru.ru_utime + ru.ru_stime, 4), "max_rss_kb": ru.ru_maxrss})
    os._exit(0)


class _Lines:
    """Newline-delimited JSON messages from the init's ready pipe."""

    def __init__(self, fd: int) -> None:
        self.fd, self.buf = fd, b""

    def next(self, deadline: float) -> dict | None:
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return None


def _kill_run(pid: int) -> None:
    try:  # the init's group first: all its processes die at once, not one by one
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def _supervise(pid: int, lines: _Lines, timeout_s: float) -> dict:
    """Everything in the status is what this process saw: the init's wait status, its own timer,
    and the init's last report (the init is ours and out of the program's reach)."""
    ready = lines.next(time.monotonic() + _SETUP_TIMEOUT_S) or {"ok": False, "error": "sandbox setup gave no answer"}
    timed_out = False
    if ready.get("ok"):
        pidfd = os.pidfd_open(pid)
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        timed_out = not poller.poll(timeout_s * 1000)
        os.close(pidfd)
    if timed_out or not ready.get("ok"):
        _kill_run(pid)
    _, init_st, init_ru = os.wait4(pid, 0)
    _kill_run(pid)  # stragglers left in its group (only possible without a pid namespace)
    final = lines.next(time.monotonic() + 0.2) if not timed_out and ready.get("ok") else None
    st = final["status"] if final else init_st
    sig = os.WTERMSIG(st) if os.WIFSIGNALED(st) else None
    return {
        "exit_code": -sig if sig else os.WEXITSTATUS(st),
        "signal": sig,
        "timed_out": timed_out,
        "cpu_s": final["cpu_s"] if final else round(init_ru.ru_utime + init_ru.ru_stime, 4),
        "max_rss_kb": final["max_rss_kb"] if final else init_ru.ru_maxrss,
        "syntax_error": final.get("syntax_error") if final else None,
        "applied": ready.get("applied"),
        "setup_error": None if ready.get("ok") else ready.get("error", "setup failed"),
    }


def _run_cgroup(plan: dict, limits: dict) -> cgroup.RunCgroup | None:
    """The run's cgroup. Pages the run shares with the helper stay charged to the helper; all
    the run adds (its own pages, copies of shared ones it writes, shared memory, /tmp files,
    kernel objects) counts, up to `memory_mb` plus a small allowance for kernel objects."""
    if not plan.get("cgroup"):
        return None
    parent, name = cgroup.Parent(**plan["cgroup"]), f"run-{os.getpid()}"
    stale = parent.run(name)  # left by a killed monitor that had this pid, not yet removed
    if stale is not None:
        stale.kill_all()
        stale.remove()
    return parent.create(name, (int(limits["memory_mb"]) + _KERNEL_MB) << 20)


def _finish_cgroup(cg: cgroup.RunCgroup | None) -> dict:
    if cg is None:
        return {"scope": "process"}
    stats = cg.stats()
    cg.kill_all()  # processes that left the init's group (only possible without a pid namespace)
    cg.remove()
    return {"scope": "run", **stats}


def _monitor(req: dict, fds: list[int], helper_pid: int) -> NoReturn:
    status_fd = fds[5]
    cg = None
    try:
        os.setsid()
        linux.set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != helper_pid:
            os._exit(1)
        plan, limits = req["plan"], req["limits"]
        cg = _run_cgroup(plan, limits)
        _enter_namespaces(plan)
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        join_fd = cg.procs_fd() if cg else None
        pid = os.fork()
        if pid == 0:
            for fd in (status_fd, ready_r, life_w):
                os.close(fd)
            _init_main(plan, limits, fds[:5], ready_w, life_r, join_fd)
        for fd in (*fds[:5], ready_w, life_r, *([join_fd] if join_fd is not None else [])):
            os.close(fd)
        try:  # the monitor must win the CPU from a run that saturates it, to kill it on time
            os.setpriority(os.PRIO_PROCESS, 0, -10)
        except OSError:
            pass
        status = _supervise(pid, _Lines(ready_r), float(limits["timeout_s"]))
        status["memory"] = _finish_cgroup(cg)
    except BaseException as e:  # noqa: BLE001
        status = {"setup_error": f"monitor failed: {type(e).__name__}: {e}"}
        if cg is not None:
            _finish_cgroup(cg)
    try:
        os.write(status_fd, json.dumps(status).encode())
    finally:
        os.close(status_fd)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # takes any straggler of the run along
        os._exit(0)


def launch(req: dict, fds: list[int], sock: socket.socket | None = None) -> int:
    """Fork the monitor for one run; return its pid. `fds` are closed in the caller.

    Args:
        req: {"plan": ..., "limits": ...} (see `plan.for_run` and `SandboxLimits.to_wire`).
        fds: job, stdin, stdout, stderr, side result, status descriptors.
        sock: the helper's socket, closed in the monitor.
    """
    helper_pid = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            if sock is not None:
                sock.close()
            _monitor(req, fds, helper_pid)
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    return pid
