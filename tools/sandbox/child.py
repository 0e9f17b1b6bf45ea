"""Confinement of one sandboxed process, applied in order before any model-written code runs.

The child is forked by the run's monitor inside fresh namespaces. Here it (1) builds a minimal
read-only root (system dirs, the Python installation, a few device nodes, a fresh /proc, a
size-limited tmpfs at /tmp as its working directory) and pivots into it, and allows no SysV
IPC object and no POSIX message queue in the run's own IPC namespace, (2) sets rlimits,
(3) drops to the run's unprivileged uid or drops every capability, (4) sets no-new-privs,
(5) applies Landlock and (6) seccomp. Without namespaces (the "process" tier) it skips (1)
and works in a host directory the caller created. Which steps apply is decided by the plan the
fork helper probed at start; this module only carries a plan out and reports failure.
"""

from __future__ import annotations

import os
import resource
import signal

from agentrt.tools.sandbox import landlock, linux, seccomp

__all__ = ["confine", "SetupError"]

_SIGPENDING = 1024
_DEVICES = ("null", "zero", "full", "random", "urandom")
_RO_FLAGS = linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV
# statvfs f_flag bits -> mount flags that must be kept on a read-only remount (locked in userns)
_KEEP = ((8, linux.MS_NOEXEC), (1024, 1024), (2048, 2048), (4096, 1 << 21))


class SetupError(Exception):
    """Confinement could not be applied; the run must not start."""


def _bind_ro(src: str, dst: str, rec: bool = True) -> None:
    linux.mount(src, dst, None, linux.MS_BIND | (linux.MS_REC if rec else 0))
    flags = _RO_FLAGS
    f_flag = os.statvfs(src).f_flag
    for st_bit, ms_bit in _KEEP:
        if f_flag & st_bit:
            flags |= ms_bit
    linux.mount(None, dst, None, flags)


def _touch(path: str) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _expose(base: str, path: str) -> None:
    """Make host `path` visible at the same place in the new root, read-only."""
    target = base + path
    if os.path.lexists(target):
        return
    parent = os.path.dirname(path)
    if parent != "/" and not os.path.lexists(base + parent):
        os.makedirs(base + parent, mode=0o755)
    if os.path.islink(path) and os.path.dirname(path) == "/":
        os.symlink(os.readlink(path), target)  # /bin -> usr/bin and friends
    elif os.path.isdir(path):
        os.makedirs(target, mode=0o755)
        _bind_ro(path, target)
    elif os.path.isfile(path):
        _touch(target)
        _bind_ro(path, target, rec=False)


def build_root(plan: dict, limits: dict) -> None:
    """Build the minimal root in `plan["mount_base"]`, pivot into it and enter /tmp."""
    base = plan["mount_base"]
    uid = plan.get("uid")
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("tmpfs", base, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=4m,nr_inodes=4096,mode=0755")
    for d in ("proc", "dev", "tmp", "etc", ".old"):
        os.mkdir(f"{base}/{d}", 0o755)
    for path in plan["ro_paths"]:
        _expose(base, path)
    owner = f",uid={uid},gid={uid},mode=0700" if uid else ",mode=1777"
    tmp_opts = f"size={int(limits['disk_mb'])}m,nr_inodes={int(limits['max_files'])}{owner}"
    linux.mount("tmpfs", f"{base}/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, tmp_opts)
    for name in _DEVICES:
        _touch(f"{base}/dev/{name}")
        linux.mount(f"/dev/{name}", f"{base}/dev/{name}", None, linux.MS_BIND)
    os.mkdir(f"{base}/dev/shm")
    linux.mount(f"{base}/tmp", f"{base}/dev/shm", None, linux.MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{base}/dev/{name}")
    run_uid = uid if uid else 0
    _write(f"{base}/etc/passwd", f"root:x:0:0::/root:/usr/sbin/nologin\nsandbox:x:{run_uid}:{run_uid}::/tmp:/usr/sbin/nologin\n")
    _write(f"{base}/etc/group", f"root:x:0:\nsandbox:x:{run_uid}:\n")
    _write(f"{base}/etc/hostname", "sandbox\n")
    _write(f"{base}/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    if plan.get("ld_cache"):
        _touch(f"{base}/etc/ld.so.cache")
        _bind_ro("/etc/ld.so.cache", f"{base}/etc/ld.so.cache", rec=False)
    linux.mount("proc", f"{base}/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    os.chdir(base)
    linux.pivot_root(".", ".old")
    linux.umount2("/.old", linux.MNT_DETACH)
    os.rmdir("/.old")
    linux.mount(None, "/", None, linux.MS_REMOUNT | linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV)
    os.chdir("/tmp")


# sysctls of the run's own IPC namespace: no SysV segment, semaphore set or message queue, no
# POSIX message queue (seccomp refuses these calls too; this holds where seccomp is off)
_IPC_LIMITS = (("kernel/shmmni", "0"), ("kernel/shmall", "0"), ("kernel/shmmax", "0"), ("kernel/msgmni", "0"),
               ("kernel/sem", "0 0 0 0"), ("fs/mqueue/queues_max", "0"))


def limit_ipc() -> bool:
    """Apply `_IPC_LIMITS` (only ever inside a new IPC namespace); True when every one took."""
    ok = True
    for name, value in _IPC_LIMITS:
        try:
            _write(f"/proc/sys/{name}", value)
        except FileNotFoundError:
            continue  # the kernel lacks the feature: nothing to limit
        except OSError:
            ok = False
    return ok


def set_limits(limits: dict, baseline_vm: int) -> None:
    """Apply rlimits. The address-space limit is the inherited baseline plus `memory_mb`."""
    mb = 1024 * 1024
    cpu = max(1, int(-(-float(limits["cpu_s"]) // 1)))
    pairs = {
        resource.RLIMIT_CPU: (cpu, cpu + 1),
        resource.RLIMIT_AS: (baseline_vm + int(limits["memory_mb"]) * mb,) * 2,
        resource.RLIMIT_FSIZE: (int(limits["file_size_mb"]) * mb,) * 2,
        resource.RLIMIT_NOFILE: (int(limits["max_open_files"]),) * 2,
        resource.RLIMIT_NPROC: (int(limits["max_processes"]),) * 2,
        resource.RLIMIT_CORE: (0, 0),
        resource.RLIMIT_MEMLOCK: (0, 0),
        resource.RLIMIT_MSGQUEUE: (0, 0),
        # no real-time scheduling and no raised priority (the monitor must win the CPU), and a
        # short queue of pending signals (each one is kernel memory)
        resource.RLIMIT_RTPRIO: (0, 0),
        resource.RLIMIT_NICE: (0, 0),
        resource.RLIMIT_SIGPENDING: (_SIGPENDING, _SIGPENDING),
    }
    for res, (soft, hard) in pairs.items():
        cur_hard = resource.getrlimit(res)[1]
        if cur_hard != resource.RLIM_INFINITY:  # without privileges a hard limit only goes down
            soft, hard = min(soft, cur_hard), min(hard, cur_hard)
        resource.setrlimit(res, (soft, hard))


def _drop_identity(plan: dict) -> None:
    uid = plan.get("uid")
    if uid:
        linux.drop_capabilities(current=False)  # setresuid below clears the current sets
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    else:  # the userns tier's root, or the process tier run by root: no capability at all
        linux.drop_capabilities()


def _lock_down(plan: dict) -> dict:
    linux.set_no_new_privs()
    applied = {"no_new_privs": True, "landlock_abi": 0, "seccomp": False}
    if plan.get("landlock"):
        applied["landlock_abi"] = landlock.restrict(plan["ll_read"], plan["ll_write"])
    if plan.get("seccomp"):
        seccomp.install(seccomp.build_filter(allow_inet=bool(plan.get("netns"))))
        applied["seccomp"] = True
    return applied


def confine(plan: dict, limits: dict, baseline_vm: int) -> dict:
    """Apply every step of `plan` to the calling process; return what was applied.

    Raises:
        SetupError: any step failed (the caller must exit without running code).
    """
    try:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        ipc = False
        if plan.get("mountns"):
            ipc = limit_ipc()
            build_root(plan, limits)
            if plan.get("utsns"):
                linux.sethostname("sandbox")
        else:
            os.chdir(plan["workdir"])
        set_limits(limits, baseline_vm)
        _drop_identity(plan)
        # A uid change clears the parent-death signal: set it again (seccomp then forbids
        # the program to clear it, so killing the monitor always kills the run).
        linux.set_parent_death_signal(signal.SIGKILL)
        return {**_lock_down(plan), "ipc_limits": ipc}
    except (OSError, ValueError, KeyError) as e:
        raise SetupError(f"{type(e).__name__}: {e}") from None
