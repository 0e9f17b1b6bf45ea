"""Confinement plans: which steps a run takes on this machine, as plain JSON-able dicts.

A plan names the tier ("namespaces": root-made namespaces plus a separate uid; "userns": an
unprivileged user namespace; "process": no namespaces), the paths exposed read-only, the
Landlock path lists, whether seccomp applies and where runs' memory cgroups go (if anywhere).
The fork helper builds a base plan once, when its probe has shown which tier works, then
completes it per run with the run's uid or work directory. This module decides nothing about limits and touches no process state.
"""

from __future__ import annotations

import os
import sys
import sysconfig

__all__ = ["TIERS", "python_paths", "base_plan", "for_run", "UID_BASE", "UID_SPAN"]

TIERS = ("namespaces", "userns", "process")
# Runs in the "namespaces" tier get a uid of their own from this range (no /etc/passwd entry).
UID_BASE = 0x40000000
UID_SPAN = 1 << 24

_SYSTEM = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]
_DEV_RW = ["/dev/null", "/dev/zero", "/dev/full"]
_DEV_RO = ["/dev/random", "/dev/urandom"]


def python_paths() -> list[str]:
    """Directories of the interpreter, its standard library and installed packages.

    Deliberately not every `sys.path` entry: a source checkout on the path (an editable
    install, a development tree) would expose the project's files and data to the program.
    Modules from such a tree must be preloaded by the fork helper instead.
    """
    found = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))]
    paths = sysconfig.get_paths()
    found += [paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths]
    found += [p for p in sys.path if os.path.basename(p.rstrip("/")) in ("site-packages", "dist-packages")]
    real = sorted({os.path.realpath(p) for p in found if p and os.path.isdir(p)}, key=len)
    kept: list[str] = []
    for p in real:
        if p == "/" or any(p == k or p.startswith(k.rstrip("/") + "/") for k in kept):
            continue
        kept.append(p)
    return kept


def base_plan(tier: str, *, landlock_abi: int, seccomp_ok: bool, mount_base: str,
              cgroup: dict | None = None) -> dict:
    """The plan shared by every run of one fork helper (`cgroup`: {"version", "path"} of the
    directory runs' memory cgroups are made in, or None)."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    py = python_paths()
    ns = tier != "process"
    return {
        "tier": tier,
        "mountns": ns,
        "netns": ns,
        "pidns": ns,
        "utsns": ns,
        "userns": tier == "userns",
        "uid": None,
        "workdir": None,
        "mount_base": mount_base,
        "ro_paths": _SYSTEM + py,
        "ld_cache": os.path.isfile("/etc/ld.so.cache"),
        "landlock": landlock_abi > 0,
        "seccomp": seccomp_ok,
        "cgroup": cgroup,
        "ll_read": ["/"] if ns else _SYSTEM + py + _DEV_RO + ["/etc/ld.so.cache"],
        "ll_write": ["/tmp", "/dev/shm", *_DEV_RW] if ns else list(_DEV_RW),
    }


def for_run(base: dict, *, uid: int | None, workdir: str | None) -> dict:
    """Complete a base plan for one run.

    Raises:
        ValueError: the uid is outside the sandbox range or the work directory is missing.
    """
    plan = dict(base)
    if base["tier"] == "namespaces":
        if uid is None or not UID_BASE <= uid < UID_BASE + UID_SPAN:
            raise ValueError(f"run uid {uid} outside the sandbox range")
        plan["uid"] = uid
    if base["tier"] == "process":
        if not workdir or not os.path.isdir(workdir):
            raise ValueError("the process tier needs an existing work directory")
        plan["workdir"] = workdir
        plan["ll_write"] = [workdir, *base["ll_write"]]
    return plan
