"""Per-run memory cgroups: one hard limit on everything a run holds, in every one of its processes.

An rlimit bounds one process's address space; it does not see SysV or POSIX shared memory,
memfds, files in the run's tmpfs, pipe buffers or the page tables of many processes. The
kernel charges all of those to the memory cgroup of the task that first touches them, so a
cgroup per run with a hard limit bounds them all, and its counters (OOM kills, times the limit
was hit, peak use) are what the host itself observed about the run's memory.

`locate` finds where this process may create cgroups: the memory controller's own hierarchy
(cgroup v1), or a cgroup v2 directory below which the memory controller can be enabled.
`Parent` makes one directory per fork helper and one per run below it. This module knows
nothing about namespaces, tiers or jobs; it only reads and writes cgroupfs files and
reports failure as `OSError`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass

__all__ = ["Parent", "RunCgroup", "locate", "sweep", "sweep_stale"]

# file names per cgroup version: hard limit, swap limit, peak use, event counters
_FILES = {
    1: {"limit": "memory.limit_in_bytes", "swap": "memory.memsw.limit_in_bytes",
        "peak": "memory.max_usage_in_bytes", "events": "memory.oom_control", "hits": "memory.failcnt"},
    2: {"limit": "memory.max", "swap": "memory.swap.max", "peak": "memory.peak", "events": "memory.events",
        "hits": None},
}
_PREFIX = "agentrt-sandbox-"


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _mounts(mountinfo: str) -> dict[str, str]:
    """{"v2": mount point, "v1": mount point of the memory hierarchy} from /proc/self/mountinfo."""
    found: dict[str, str] = {}
    for line in mountinfo.splitlines():
        pre, _, post = line.partition(" - ")
        fields, tail = pre.split(), post.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        if tail[0] == "cgroup2":
            found.setdefault("v2", fields[4])
        elif tail[0] == "cgroup" and "memory" in tail[2].split(","):
            found.setdefault("v1", fields[4])
    return found


def _own_paths(proc_cgroup: str) -> dict[str, str]:
    """{"v2": own path, "v1": own path in the memory hierarchy} from /proc/self/cgroup."""
    own: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            own["v2"] = parts[2]
        elif "memory" in parts[1].split(","):
            own["v1"] = parts[2]
    return own


def locate(mountinfo: str | None = None, proc_cgroup: str | None = None) -> tuple[tuple[int, str] | None, str]:
    """Where runs' cgroups can go: ((version, directory), "") or (None, why not)."""
    mounts = _mounts(mountinfo if mountinfo is not None else _read("/proc/self/mountinfo"))
    own = _own_paths(proc_cgroup if proc_cgroup is not None else _read("/proc/self/cgroup"))
    if "v1" in mounts and "v1" in own:
        return (1, os.path.join(mounts["v1"], own["v1"].lstrip("/"))), ""
    if "v2" in mounts and "v2" in own:
        path = os.path.join(mounts["v2"], own["v2"].lstrip("/"))
        try:
            controllers = _read(os.path.join(path, "cgroup.controllers")).split()
        except OSError as e:
            return None, f"cgroup v2 at {path} unreadable: {e.strerror}"
        if "memory" not in controllers:
            return None, "cgroup v2 offers no memory controller here and no v1 memory hierarchy is mounted"
        return (2, path), ""
    return None, "no memory cgroup hierarchy is mounted"


@dataclass
class RunCgroup:
    """The cgroup of one run, reached through descriptors: the monitor keeps using it after the
    run's pivot_root has taken the host's /sys out of its view."""

    version: int
    parent_fd: int
    name: str
    fd: int = -1

    def __post_init__(self) -> None:
        if self.fd < 0:
            self.fd = os.open(self.name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=self.parent_fd)

    def _read(self, name: str) -> str:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.fd)
        with os.fdopen(fd) as f:
            return f.read()

    def _write(self, name: str, text: str) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.fd)
        with os.fdopen(fd, "w") as f:
            f.write(text)

    def procs_fd(self) -> int:
        """A write descriptor on cgroup.procs: a process joins by writing b"0" to it."""
        return os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.fd)

    def stats(self) -> dict:
        """What the kernel counted: OOM kills, times the limit was hit, peak use in MiB."""
        files = _FILES[self.version]
        out = {"oom_kills": 0, "limit_hits": 0, "peak_mb": None}
        with contextlib.suppress(OSError, ValueError):
            for line in self._read(files["events"]).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    out["oom_kills"] = int(value)
                elif key == "max" and self.version == 2:
                    out["limit_hits"] = int(value)
            if files["hits"]:
                out["limit_hits"] = int(self._read(files["hits"]))
        with contextlib.suppress(OSError, ValueError):
            out["peak_mb"] = round(int(self._read(files["peak"])) / (1 << 20), 2)
        return out

    def kill_all(self) -> None:
        """SIGKILL every process still in the cgroup (those a pid namespace did not take along)."""
        for _ in range(100):
            try:
                pids = [int(p) for p in self._read("cgroup.procs").split()]
            except (OSError, ValueError):
                return
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.01)

    def remove(self, wait_s: float = 1.0) -> bool:
        """Remove the cgroup once its last process is gone; False if it is still busy."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -2
        deadline = time.monotonic() + wait_s
        while True:
            try:
                os.rmdir(self.name, dir_fd=self.parent_fd)
                return True
            except FileNotFoundError:
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)


@dataclass
class Parent:
    """The directory of one fork helper's runs, and a descriptor on it."""

    version: int
    path: str
    fd: int

    @classmethod
    def make(cls, version: int, where: str) -> "Parent":
        """Create this helper's directory below `where` and check a run's cgroup can be limited.

        Raises:
            OSError: no permission, or the controller cannot be enabled or limited there.
        """
        path = os.path.join(where, f"{_PREFIX}{os.getpid()}")
        os.makedirs(path, exist_ok=True)
        try:
            if version == 2:
                _write(os.path.join(where, "cgroup.subtree_control"), "+memory")
                _write(os.path.join(path, "cgroup.subtree_control"), "+memory")
            parent = cls(version, path, os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            parent.create("probe", 64 << 20).remove(0)
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(path)
            raise
        return parent

    def create(self, name: str, limit_bytes: int) -> RunCgroup:
        """A run's cgroup with a hard memory limit and no swap beyond it.

        Raises:
            OSError: the directory or its limit could not be made.
        """
        files = _FILES[self.version]
        os.mkdir(name, dir_fd=self.fd)
        run = None
        try:
            run = RunCgroup(self.version, self.fd, name)
            run._write(files["limit"], str(int(limit_bytes)))
            with contextlib.suppress(FileNotFoundError):  # no swap accounting: nothing to bound
                run._write(files["swap"], str(int(limit_bytes)) if self.version == 1 else "0")
        except OSError:
            if run is not None:
                run.remove(0)
            else:
                with contextlib.suppress(OSError):
                    os.rmdir(name, dir_fd=self.fd)
            raise
        return run

    def run(self, name: str) -> RunCgroup | None:
        """The cgroup of the run called `name`, if it still exists."""
        try:
            return RunCgroup(self.version, self.fd, name)
        except OSError:
            return None

    def remove(self) -> None:
        """Remove every run's cgroup that is idle, then this directory (best effort)."""
        sweep(self.path)


def sweep(path: str) -> None:
    """Remove the idle cgroups below `path` and `path` itself; busy ones stay."""
    with contextlib.suppress(OSError):
        for name in os.listdir(path):
            if os.path.isdir(os.path.join(path, name)):
                with contextlib.suppress(OSError):
                    os.rmdir(os.path.join(path, name))
        os.rmdir(path)


def sweep_stale(where: str) -> None:
    """Remove the directories of fork helpers that no longer run (killed before they cleaned up)."""
    with contextlib.suppress(OSError):
        for name in os.listdir(where):
            if name.startswith(_PREFIX) and name[len(_PREFIX):].isdigit():
                if not os.path.exists(f"/proc/{name[len(_PREFIX):]}"):
                    sweep(os.path.join(where, name))
