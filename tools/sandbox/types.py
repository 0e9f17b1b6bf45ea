"""Typed nouns at the sandbox boundary: the limits of a run, its result, the isolation report.

They are pydantic models because they cross the boundary to tool callers, traces and the CLI.
This module knows nothing about processes; `host.py` turns these into requests and back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    from agentrt.core.config import Limits

__all__ = ["SandboxLimits", "SandboxResult", "IsolationInfo", "KilledReason", "MemoryScope"]

KilledReason = Literal["timeout", "cpu_limit", "memory_limit", "output_limit", "file_size_limit", "signal", "cancelled"]


class SandboxLimits(BaseModel):
    """Resource limits of one run. Every field has a safe default.

    `memory_mb` is the memory the program may add to what the fork helper already holds (the
    interpreter and preloaded modules), so a limit means the same whatever was preloaded: as
    address space per process, and, where runs get a memory cgroup, as memory the whole run
    holds (all its processes, shared memory, memfds, /tmp files; 16 MiB more for kernel
    objects). `cpu_s` defaults to the wall timeout. `disk_mb` and `max_files` bound the
    private /tmp (namespace tiers); `file_size_mb` bounds any single file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(10.0, gt=0, le=600)
    cpu_s: float | None = Field(None, gt=0, le=600)
    memory_mb: int = Field(512, ge=16, le=65536)
    max_processes: int = Field(32, ge=1, le=4096)
    max_open_files: int = Field(128, ge=16, le=65536)
    file_size_mb: int = Field(16, ge=1, le=65536)
    disk_mb: int = Field(64, ge=1, le=65536)
    max_files: int = Field(2048, ge=16, le=1_000_000)
    output_bytes: int = Field(64 * 1024, ge=1024, le=64 * 1024 * 1024)
    output_kill_bytes: int = Field(16 * 1024 * 1024, ge=1024)
    stdin_bytes: int = Field(4 * 1024 * 1024, ge=0, le=256 * 1024 * 1024)

    @model_validator(mode="after")
    def _consistent(self) -> "SandboxLimits":
        if self.output_kill_bytes < self.output_bytes:
            raise ValueError("output_kill_bytes must be at least output_bytes")
        return self

    @classmethod
    def from_config(cls, limits: "Limits", **overrides: Any) -> "SandboxLimits":
        """Limits from the runtime's settings (`tool_timeout_s`, `tool_memory_mb`) plus overrides."""
        return cls(timeout_s=limits.tool_timeout_s, memory_mb=limits.tool_memory_mb, **overrides)

    def effective_cpu_s(self) -> float:
        """The CPU-time limit actually applied."""
        return self.cpu_s if self.cpu_s is not None else self.timeout_s

    def to_wire(self) -> dict[str, Any]:
        """The dict the fork helper expects."""
        d = self.model_dump()
        d["cpu_s"] = self.effective_cpu_s()
        return d


MemoryScope = Literal["run", "process"]


class SandboxResult(BaseModel):
    """What one run produced. `exit_code` is negative (minus the signal) when a signal ended it.

    Everything but `stdout`, `stderr` and `result` is what the host observed (its timer, wait
    statuses, the run's cgroup), never something the program wrote. `memory_limit_scope` says
    what `memory_mb` bounded: "run" (a memory cgroup: every process, shared memory, memfds and
    /tmp files together, `memory_peak_mb` its peak) or "process" (each process's address space
    only). `syntax_error` comes from compiling the program before any of it ran.
    """

    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    killed_reason: KilledReason | None = None
    duration_s: float = 0.0
    cpu_s: float | None = None
    max_rss_mb: float | None = None
    truncated: bool = False
    result: Any = None
    result_error: str | None = None
    syntax_error: dict[str, Any] | None = None
    tier: str = ""
    memory_limit_scope: MemoryScope = "process"
    memory_peak_mb: float | None = None

    @property
    def ok(self) -> bool:
        """True when the program exited 0 without being killed."""
        return self.exit_code == 0 and not self.timed_out and self.killed_reason is None


class IsolationInfo(BaseModel):
    """Which isolation layers are active on this machine (found by a start-up probe).

    Tiers, strongest first: "namespaces" (root: network, pid, mount, IPC and UTS namespaces, a
    minimal read-only root, a separate uid per run), "userns" (the same namespaces through an
    unprivileged user namespace, same uid as the caller), "process" (no namespaces: rlimits,
    process group, Landlock and seccomp where available; `bare` where neither of the last two
    is). `memory_limit_scope` is "run" where each run gets a memory cgroup that bounds
    everything it holds, "process" where `memory_mb` bounds only each process's address space
    (the notes say why); `ipc_limits` says the run's IPC namespace allows no SysV IPC object or
    POSIX message queue.
    """

    tier: Literal["namespaces", "userns", "process"]
    network_isolated: bool
    network_namespace: bool
    pid_namespace: bool
    mount_namespace: bool
    separate_uid: bool
    no_new_privs: bool
    seccomp: bool
    landlock_abi: int
    memory_limit_scope: MemoryScope = "process"
    ipc_limits: bool = False
    notes: list[str] = Field(default_factory=list)

    @property
    def bare(self) -> bool:
        """The last-resort tier: no namespaces, no seccomp and no Landlock; beyond rlimits and
        dropped capabilities the program has the caller's uid, files and network."""
        return self.tier == "process" and not self.seccomp and self.landlock_abi == 0
