"""The fork helper: a `python -I` process that preloads modules and forks one confined run per request.

Started once by `Sandbox` with an allowlisted environment and no secrets. At start it probes
which isolation tier the machine allows by running a no-op job through the real path, then
answers requests on a unix socket: each request carries limits plus file descriptors (job,
stdin, stdout, stderr, result, status) and never the program text, so nothing of one run stays
in the helper's memory for the next. Per request it forks a monitor (see `monitor.py`) that
enters new namespaces, confines the run, enforces its wall timeout and writes its status as
JSON. Where the machine lets it, each run also gets a memory cgroup below a directory the
helper makes at start (see `cgroup.py`); the helper removes the cgroups of monitors that were
killed before they could. The helper is a child subreaper: processes of a run whose init died
(killed with its monitor, without a pid namespace to take them along) become its children, and
it kills them, as it kills every run still in flight when it stops. The helper never runs
model-written code.

Run as: python -I -m agentrt.tools.sandbox.zygote --fd N [--preload mod1,mod2]
"""

from __future__ import annotations

import argparse
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

from agentrt.tools.sandbox import cgroup, landlock, linux, seccomp
from agentrt.tools.sandbox import plan as plan_mod
from agentrt.tools.sandbox.monitor import launch

__all__ = ["main", "probe"]


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
        job = _memfd(json.dumps({"entry": "agentrt.tools.sandbox.runner:probe_info", "env": {}}).encode())
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


def _cgroup_parent() -> tuple[dict | None, str]:
    """This helper's directory for runs' memory cgroups, or None and why there is none."""
    found, why = cgroup.locate()
    if found is None:
        return None, f"no memory cgroup per run ({why}): memory_mb bounds each process only"
    version, where = found
    cgroup.sweep_stale(where)
    try:
        parent = cgroup.Parent.make(version, where)
    except OSError as e:
        return None, (f"no memory cgroup per run (cgroup v{version} at {where}: {e.strerror or e}): "
                      "memory_mb bounds each process only")
    return {"version": parent.version, "path": parent.path, "fd": parent.fd}, ""


_BARE_NOTE = ("bare tier: no namespaces, seccomp or Landlock; beyond rlimits and dropped "
              "capabilities the program has this user's files and network")
_NO_BARE_NOTE = "bare tier (process, no seccomp, no Landlock) refused by configuration"


def probe(mount_base: str, *, max_tier: str = "namespaces", use_landlock: bool = True,
          use_seccomp: bool = True, use_cgroup: bool = True,
          allow_bare: bool = True) -> tuple[dict, dict]:
    """Find the strongest tier that works here; return its base plan and an isolation report.

    Args:
        mount_base: an empty directory to build each run's root on.
        max_tier: the strongest tier to try (weaker ones are tried after it).
        use_landlock, use_seccomp, use_cgroup: allow these layers (all on by default).
        allow_bare: allow the process tier with neither seccomp nor Landlock (the last resort).
    """
    abi = landlock.abi_version() if use_landlock else 0
    sc_ok = seccomp.available() and use_seccomp
    notes: list[str] = []
    cg, why = _cgroup_parent() if use_cgroup else (None, "no memory cgroup per run (turned off by configuration)")
    if why:
        notes.append(why)
    tiers = plan_mod.TIERS[plan_mod.TIERS.index(max_tier):]
    candidates = [(t, abi, sc_ok, c) for t in tiers for c in ([cg, None] if cg else [None])]
    if abi or sc_ok:
        candidates.append(("process", 0, False, None))
    if not use_landlock or not use_seccomp:
        notes.append(f"layers turned off by configuration: landlock={use_landlock}, seccomp={use_seccomp}")
    if max_tier != "namespaces":
        notes.append(f"tiers above {max_tier!r} not tried (configuration)")
    for tier, ll_abi, sc, cgx in candidates:
        if tier == "namespaces" and os.geteuid() != 0:
            if "namespaces tier needs root; not root" not in notes:
                notes.append("namespaces tier needs root; not root")
            continue
        bare = tier == "process" and not ll_abi and not sc
        if bare and not allow_bare:
            if _NO_BARE_NOTE not in notes:
                notes.append(_NO_BARE_NOTE)
            continue
        base = plan_mod.base_plan(tier, landlock_abi=ll_abi, seccomp_ok=sc, mount_base=mount_base, cgroup=cgx)
        outcome = _probe_once(base)
        if "error" in outcome:
            notes.append(f"{tier} tier (landlock={ll_abi > 0}, seccomp={sc}, cgroup={cgx is not None}) "
                         f"failed its probe: {outcome['error']}")
            continue
        if cg and cgx is None:
            cgroup.Parent(**cg).remove()
        applied, ns = outcome["applied"], tier != "process"
        info = {
            "tier": tier, "network_namespace": ns, "pid_namespace": ns and outcome["result"]["pid"] == 2,
            "mount_namespace": ns, "separate_uid": tier == "namespaces",
            "no_new_privs": bool(applied.get("no_new_privs")), "seccomp": bool(applied.get("seccomp")),
            "landlock_abi": int(applied.get("landlock_abi") or 0),
            "memory_limit_scope": "run" if cgx else "process", "ipc_limits": bool(applied.get("ipc_limits")),
            "notes": notes,
        }
        info["network_isolated"] = ns or info["seccomp"]
        if not ns and not info["seccomp"] and not info["landlock_abi"]:
            notes.append(_BARE_NOTE)
        return base, info
    if cg:
        cgroup.Parent(**cg).remove()
    raise RuntimeError("no sandbox tier works on this machine: " + "; ".join(notes))


_REAP_MS = 200  # without a pid namespace: how often the helper kills what runs left behind
_KILL_MAX = 4096  # processes stopped and killed in one pass; the next pass takes the rest


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def _children(pid: int) -> list[int]:
    """The children of `pid`, from /proc (every thread's list, or every process's parent)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    if not tids:
        return []
    if not os.path.exists(f"/proc/{pid}/task/{tids[0]}/children"):  # kernel without the list
        return [int(p) for p in os.listdir("/proc") if p.isdigit() and _ppid(int(p)) == pid]
    kids: list[int] = []
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except (OSError, ValueError):
            continue
    return kids


def _kill_orphans(monitors: set[int]) -> int:
    """Kill every child of this helper that is not a live monitor, with all its descendants;
    return how many processes were signalled.

    The helper is a child subreaper and each run's init adopts the orphans of its program, so
    such a child is a process of a run whose init is gone: without a pid namespace (the
    "process" tier) nothing else would end it. The tree is stopped first (a stopped process
    cannot fork), then killed; each process is reached through a pidfd opened while its parent
    was known to be its parent, so a recycled pid is never signalled.
    """
    level = [(os.getpid(), pid) for pid in _children(os.getpid()) if pid not in monitors]
    held: list[int] = []
    while level and len(held) < _KILL_MAX:
        below = []
        for parent, pid in level:
            try:
                fd = os.pidfd_open(pid)
            except OSError:
                continue
            if _ppid(pid) != parent:  # gone since it was listed
                os.close(fd)
                continue
            held.append(fd)
            try:
                signal.pidfd_send_signal(fd, signal.SIGSTOP)
            except OSError:
                pass
            below += [(pid, kid) for kid in _children(pid)]
        level = below
    for fd in held:
        try:
            signal.pidfd_send_signal(fd, signal.SIGKILL)
        except OSError:
            pass
        os.close(fd)
    return len(held)


def _end_all() -> None:
    """Kill every run still in flight and what it left behind (the helper is stopping)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            return
        _kill_orphans(set())
        time.sleep(0.01)


def _reap(base: dict, busy: set[str], monitors: set[int]) -> None:
    """Reap finished monitors, kill what runs left behind, and remove the cgroups of monitors
    killed before they removed their own."""
    gone = []
    try:
        while (pid := os.waitpid(-1, os.WNOHANG)[0]) > 0:
            gone.append(pid)
            monitors.discard(pid)
    except ChildProcessError:
        pass
    if not base.get("pidns"):  # with one, the kernel ends what a run's init leaves behind
        _kill_orphans(monitors)
    if not base.get("cgroup"):
        return
    parent = cgroup.Parent(**base["cgroup"])
    for name in [*busy, *(f"run-{pid}" for pid in gone)]:
        run = parent.run(name)
        if run is not None:
            run.kill_all()
        if run is None or run.remove(0):
            busy.discard(name)
        else:
            busy.add(name)


def _handle(sock: socket.socket, base: dict, monitors: set[int]) -> bool:
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
    monitors.add(pid)
    pidfd = os.pidfd_open(pid)
    socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [pidfd])
    os.close(pidfd)
    return True


def main(argv: list[str] | None = None) -> int:
    """Entry point of the fork helper process."""
    ap = argparse.ArgumentParser(prog="agentrt.tools.sandbox.zygote")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--preload", default="")
    ap.add_argument("--max-tier", default="namespaces", choices=plan_mod.TIERS)
    ap.add_argument("--no-landlock", action="store_true")
    ap.add_argument("--no-seccomp", action="store_true")
    ap.add_argument("--no-cgroup", action="store_true")
    ap.add_argument("--no-bare", action="store_true")
    args = ap.parse_args(argv)
    sys.dont_write_bytecode = True
    linux.set_child_subreaper()  # what a run's init leaves behind comes back here, to be killed
    sock = socket.socket(fileno=args.fd)
    base: dict | None = None
    mount_base = tempfile.mkdtemp(prefix="agentrt-sandbox-root-")
    try:
        try:
            for name in filter(None, args.preload.split(",")):
                module = importlib.import_module(name)
                if callable(getattr(module, "warmup", None)):
                    module.warmup()
            base, info = probe(mount_base, max_tier=args.max_tier, use_landlock=not args.no_landlock,
                               use_seccomp=not args.no_seccomp, use_cgroup=not args.no_cgroup,
                               allow_bare=not args.no_bare)
        except Exception as e:  # noqa: BLE001 - tell the host why, then stop
            sock.send(json.dumps({"ready": False, "error": f"{type(e).__name__}: {e}"}).encode())
            return 1
        gc.collect()
        gc.freeze()  # keep the preloaded heap shared with forked runs
        sock.send(json.dumps({"ready": True, "info": info, "pid": os.getpid()}).encode())
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        busy: set[str] = set()
        monitors: set[int] = set()
        interval = 1000 if base.get("pidns") else _REAP_MS
        while True:
            _reap(base, busy, monitors)
            if poller.poll(interval) and not _handle(sock, base, monitors):
                return 0
    except (ConnectionError, OSError):
        return 0
    finally:
        _end_all()
        os.rmdir(mount_base)
        if base is not None and base.get("cgroup"):
            cgroup.Parent(**base["cgroup"]).remove()


if __name__ == "__main__":
    sys.exit(main())
