"""The fork helper: a `python -I` process that preloads modules and forks one confined run per request.

Started once by `Sandbox` with an allowlisted environment and no secrets. At start it probes
which isolation tier the machine allows by running a no-op job through the real path, then
answers requests on a unix socket: each request carries limits plus file descriptors (job,
stdin, stdout, stderr, result, status) and never the program text, so nothing of one run stays
in the helper's memory for the next. Per request it forks a monitor that enters new namespaces
and forks the confined child (see `child.py`, `runner.py`); the monitor enforces the wall
timeout itself and writes the run's status as JSON. The helper never runs model-written code.

Run as: python -I -m tools.sandbox.zygote --fd N [--preload mod1,mod2]
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import tempfile
import time
from typing import NoReturn

from tools.sandbox import child, landlock, linux, runner, seccomp
from tools.sandbox import plan as plan_mod

__all__ = ["main", "launch", "probe"]

_NS = linux.CLONE_NEWNS | linux.CLONE_NEWPID | linux.CLONE_NEWNET | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS
_SETUP_TIMEOUT_S = 10.0
_SETUP_FAILED = 121
_ZYGOTE_PID = os.getpid()


def _enter_namespaces(plan: dict) -> None:
    if plan["tier"] == "namespaces":
        linux.unshare(_NS)
    elif plan["tier"] == "userns":
        uid, gid = os.geteuid(), os.getegid()
        linux.unshare(linux.CLONE_NEWUSER | _NS)
        for name, text in (("setgroups", "deny"), ("uid_map", f"0 {uid} 1"), ("gid_map", f"0 {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)


def _place_fds(job_fd: int, stdin_fd: int, out_fd: int, err_fd: int, res_fd: int, ready_fd: int) -> tuple[dict, int]:
    """Read the job, put stdio on 0-3, keep the ready pipe, close every other descriptor."""
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 64) for fd in (stdin_fd, out_fd, err_fd, res_fd, ready_fd)]
    with os.fdopen(os.dup(job_fd), "rb") as f:
        job = json.loads(f.read())
    for target, fd in enumerate(high[:4]):
        os.dup2(fd, target)
    ready = os.dup2(high[4], 4)
    os.closerange(5, 1 << 16)
    return job, ready


def _child_main(plan: dict, limits: dict, fds: list[int], ready_w: int, life_r: int) -> NoReturn:
    ready = ready_w
    try:
        linux.set_parent_death_signal(signal.SIGKILL)
        if select.select([life_r], [], [], 0)[0]:  # the monitor died before the line above
            os._exit(_SETUP_FAILED)
        os.setpgid(0, 0)  # a group of its own, so the monitor can kill the whole run at once
        with open("/proc/self/statm") as f:
            baseline_vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        job, ready = _place_fds(*fds, ready_w)
        applied = child.confine(plan, limits, baseline_vm)
        os.write(ready, json.dumps({"ok": True, "applied": applied}).encode())
        os.close(ready)
    except BaseException as e:  # noqa: BLE001 - report any setup failure, never run the job
        msg = str(e) if isinstance(e, child.SetupError) else f"{type(e).__name__}: {e}"
        try:
            os.write(ready, json.dumps({"ok": False, "error": msg}).encode())
        finally:
            os._exit(_SETUP_FAILED)
    try:
        status = runner.run_job(job)
    except BaseException:  # noqa: BLE001
        status = 1
    runner.finish(status)


def _read_ready(fd: int, deadline: float) -> dict:
    buf = b""
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            break
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    try:
        return json.loads(buf) if buf else {"ok": False, "error": "sandbox setup gave no answer"}
    except ValueError:
        return {"ok": False, "error": "sandbox setup answer is not JSON"}


def _wait_child(pid: int, ready: dict, timeout_s: float) -> dict:
    pidfd = os.pidfd_open(pid)
    timed_out = False
    if ready.get("ok"):
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(timeout_s * 1000):
            timed_out = True
    if timed_out or not ready.get("ok"):
        try:  # the child's group first: all its processes die at once, not one by one
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        os.kill(pid, signal.SIGKILL)
    _, st, ru = os.wait4(pid, 0)
    os.close(pidfd)
    try:  # stragglers the child left in its group (only possible without a pid namespace)
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
    sig = os.WTERMSIG(st) if os.WIFSIGNALED(st) else None
    return {
        "exit_code": -sig if sig else os.WEXITSTATUS(st),
        "signal": sig,
        "timed_out": timed_out,
        "cpu_s": round(ru.ru_utime + ru.ru_stime, 4),
        "max_rss_kb": ru.ru_maxrss,
        "applied": ready.get("applied"),
        "setup_error": None if ready.get("ok") else ready.get("error", "setup failed"),
    }


def _monitor(req: dict, fds: list[int]) -> NoReturn:
    """Body of the per-run monitor process (forked from the helper)."""
    status_fd = fds[5]
    try:
        os.setsid()
        linux.set_parent_death_signal(signal.SIGKILL)
        if os.getppid() != _ZYGOTE_PID:
            os._exit(1)
        plan, limits = req["plan"], req["limits"]
        _enter_namespaces(plan)
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(status_fd)
            os.close(ready_r)
            os.close(life_w)
            _child_main(plan, limits, fds[:5], ready_w, life_r)
        for fd in (*fds[:5], ready_w, life_r):
            os.close(fd)
        try:  # the monitor must win the CPU from a run that saturates it, to kill it on time
            os.setpriority(os.PRIO_PROCESS, 0, -10)
        except OSError:
            pass
        ready = _read_ready(ready_r, time.monotonic() + _SETUP_TIMEOUT_S)
        status = _wait_child(pid, ready, float(limits["timeout_s"]))
    except BaseException as e:  # noqa: BLE001
        status = {"setup_error": f"monitor failed: {type(e).__name__}: {e}"}
    try:
        os.write(status_fd, json.dumps(status).encode())
    finally:
        os.close(status_fd)
        os.killpg(os.getpgrp(), signal.SIGKILL)  # takes any straggler of the run along
        os._exit(0)


def launch(req: dict, fds: list[int], sock: socket.socket | None = None) -> int:
    """Fork the monitor for one run; return its pid. `fds` are closed in the helper."""
    pid = os.fork()
    if pid == 0:
        try:
            if sock is not None:
                sock.close()
            _monitor(req, fds)
        finally:
            os._exit(1)
    for fd in fds:
        os.close(fd)
    return pid


def _memfd(data: bytes) -> int:
    """A read-only descriptor of an anonymous in-memory file holding `data`."""
    fd = os.memfd_create("job", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        return os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(fd)


def _probe_once(base: dict) -> dict:
    workdir = tempfile.mkdtemp(prefix="agentrt-probe-") if base["tier"] == "process" else None
    try:
        run_plan = plan_mod.for_run(base, uid=plan_mod.UID_BASE + plan_mod.UID_SPAN - 1, workdir=workdir)
        job = _memfd(json.dumps({"entry": "tools.sandbox.runner:probe_info", "env": {}}).encode())
        stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        pipes = [os.pipe() for _ in range(4)]  # out, err, result, status
        limits = {"timeout_s": 5, "cpu_s": 5, "memory_mb": 256, "file_size_mb": 1, "max_open_files": 64,
                  "max_processes": 8, "disk_mb": 1, "max_files": 64}
        pid = launch({"plan": run_plan, "limits": limits}, [job, stdin] + [w for _, w in pipes])
        chunks = {r: b"" for r, _ in pipes}
        deadline = time.monotonic() + 15
        open_fds = [r for r, _ in pipes]
        while open_fds and time.monotonic() < deadline:
            for fd in select.select(open_fds, [], [], 1.0)[0]:
                data = os.read(fd, 65536)
                chunks[fd] += data
                if not data:
                    open_fds.remove(fd)
        for r, _ in pipes:
            os.close(r)
        os.waitpid(pid, 0)
        status = json.loads(chunks[pipes[3][0]] or b"{}")
        result = json.loads(chunks[pipes[2][0]] or b"{}").get("value") or {}
        if status.get("exit_code") != 0 or not result.get("ok"):
            why = status.get("setup_error") or chunks[pipes[1][0]].decode(errors="replace")[-300:]
            return {"error": why or f"exit {status.get('exit_code')}"}
        return {"applied": status.get("applied") or {}, "result": result}
    except (OSError, ValueError) as e:
        return {"error": f"{type(e).__name__}: {e}"}
    finally:
        if workdir:
            os.rmdir(workdir) if os.path.isdir(workdir) and not os.listdir(workdir) else None


def probe(mount_base: str, *, max_tier: str = "namespaces", use_landlock: bool = True,
          use_seccomp: bool = True) -> tuple[dict, dict]:
    """Find the strongest tier that works here; return its base plan and an isolation report.

    Args:
        mount_base: an empty directory to build each run's root on.
        max_tier: the strongest tier to try (weaker ones are tried after it).
        use_landlock, use_seccomp: allow these layers (both on by default).
    """
    abi = landlock.abi_version() if use_landlock else 0
    sc_ok = seccomp.available() and use_seccomp
    tiers = plan_mod.TIERS[plan_mod.TIERS.index(max_tier):]
    candidates = [(t, abi, sc_ok) for t in tiers]
    if abi or sc_ok:
        candidates.append(("process", 0, False))
    notes: list[str] = []
    if not use_landlock or not use_seccomp:
        notes.append(f"layers turned off by configuration: landlock={use_landlock}, seccomp={use_seccomp}")
    if max_tier != "namespaces":
        notes.append(f"tiers above {max_tier!r} not tried (configuration)")
    for tier, ll_abi, sc in candidates:
        if tier == "namespaces" and os.geteuid() != 0:
            notes.append("namespaces tier needs root; not root")
            continue
        base = plan_mod.base_plan(tier, landlock_abi=ll_abi, seccomp_ok=sc, mount_base=mount_base)
        outcome = _probe_once(base)
        if "error" in outcome:
            notes.append(f"{tier} tier (landlock={ll_abi > 0}, seccomp={sc}) failed its probe: {outcome['error']}")
            continue
        applied, ns = outcome["applied"], tier != "process"
        info = {
            "tier": tier, "network_namespace": ns, "pid_namespace": ns and outcome["result"]["pid"] == 1,
            "mount_namespace": ns, "separate_uid": tier == "namespaces",
            "no_new_privs": bool(applied.get("no_new_privs")), "seccomp": bool(applied.get("seccomp")),
            "landlock_abi": int(applied.get("landlock_abi") or 0), "notes": notes,
        }
        info["network_isolated"] = ns or info["seccomp"]
        return base, info
    raise RuntimeError("no sandbox tier works on this machine: " + "; ".join(notes))


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _handle(sock: socket.socket, base: dict) -> bool:
    msg, fds, _, _ = socket.recv_fds(sock, 1 << 16, 8)
    if not msg:
        return False
    try:
        req = json.loads(msg)
        if len(fds) != 6:
            raise ValueError(f"expected 6 descriptors, got {len(fds)}")
        run_plan = plan_mod.for_run(base, uid=req.get("uid"), workdir=req.get("workdir"))
    except (ValueError, KeyError, TypeError) as e:
        for fd in fds:
            os.close(fd)
        sock.send(json.dumps({"error": str(e)}).encode())
        return True
    pid = launch({"plan": run_plan, "limits": req["limits"]}, fds, sock)
    pidfd = os.pidfd_open(pid)
    socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
    os.close(pidfd)
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the fork helper process."""
    ap = argparse.ArgumentParser(prog="tools.sandbox.zygote")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--preload", default="")
    ap.add_argument("--max-tier", default="namespaces", choices=plan_mod.TIERS)
    ap.add_argument("--no-landlock", action="store_true")
    ap.add_argument("--no-seccomp", action="store_true")
    args = ap.parse_args(argv)
    sys.dont_write_bytecode = True
    sock = socket.socket(fileno=args.fd)
    mount_base = tempfile.mkdtemp(prefix="agentrt-sandbox-root-")
    try:
        try:
            for name in filter(None, args.preload.split(",")):
                module = importlib.import_module(name)
                if callable(getattr(module, "warmup", None)):
                    module.warmup()
            base, info = probe(mount_base, max_tier=args.max_tier, use_landlock=not args.no_landlock,
                               use_seccomp=not args.no_seccomp)
        except Exception as e:  # noqa: BLE001 - tell the host why, then stop
            sock.send(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}).encode())
            return 1
        gc.collect()
        gc.freeze()  # keep the preloaded heap shared with forked runs
        sock.send(json.dumps({"ready": True, "info": info, "pid": os.getpid()}).encode())
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        while True:
            _reap()
            if poller.poll(1000) and not _handle(sock, base):
                return 0
    except (ConnectionError, OSError):
        return 0
    finally:
        os.rmdir(mount_base)


if __name__ == "__main__":
    sys.exit(main())
