"""Who runs a trace: the owner of a running trace and the heartbeat that keeps its lease.

A process that starts (or takes over) a trace writes its `Owner` key and a heartbeat time on it;
one daemon `Heartbeat` thread per store refreshes the time of every running trace it owns with
one UPDATE every `lease_s / 4` seconds. Any other process can then tell that nobody runs a
trace any more (`orphaned`): its heartbeat is older than the lease, or its owner ran on this
host and that process is gone. A pid is checked together with the process's start time, so a
pid the system gave to a new process is not mistaken for the owner.

The owner key is "<host> <pid> <start> <token>": the host name with the pid namespace (two
containers that share a host name do not share pids), the pid, its start time in clock ticks
since boot ("-" where the system does not say), and a random token per process. Heartbeat
times come from each writer's clock, so hosts must agree on the time to well within a lease.
This module knows nothing about tables or sessions; the store runs the UPDATE.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

__all__ = ["Owner", "Heartbeat", "orphaned"]

log = logging.getLogger(__name__)

_current: dict[int, "Owner"] = {}


def _host() -> str:
    try:
        ns = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        ns = ""
    digits = "".join(c for c in ns if c.isdigit())
    name = socket.gethostname().replace(" ", "_") or "localhost"
    return f"{name}/{digits}" if digits else name


_PROC = Path("/proc/self/stat").exists()


def _start_ticks(pid: int) -> str:
    """The start time of process `pid` in clock ticks since boot: "" when no such process runs
    (or only its zombie is left), "-" when the system does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return "" if _PROC else "-"
    except OSError:
        return "-"
    # The command name (field 2) may hold spaces and parentheses; fields after it are plain.
    fields = stat[stat.rfind(")") + 2:].split()
    if fields and fields[0] in ("Z", "X"):  # dead, waiting for its parent to reap it
        return ""
    return fields[19] if len(fields) > 19 else "-"


@dataclass(frozen=True)
class Owner:
    """One process that may own running traces."""

    host: str
    pid: int
    started: str
    token: str

    @classmethod
    def current(cls) -> "Owner":
        """This process (a new identity after a fork, since the pid changes).

        Every thread gets the same identity, even threads that ask for the first time at once
        (`setdefault` keeps the first one made): the stores fence writes by it.
        """
        pid = os.getpid()
        found = _current.get(pid)
        if found is None:
            for other in [k for k in _current if k != pid]:  # a parent's, before a fork
                _current.pop(other, None)
            made = cls(_host(), pid, _start_ticks(pid) or "-", secrets.token_hex(6))
            found = _current.setdefault(pid, made)
        return found

    @property
    def key(self) -> str:
        """The owner as stored on a trace."""
        return f"{self.host} {self.pid} {self.started} {self.token}"

    @classmethod
    def parse(cls, key: str | None) -> "Owner | None":
        """The owner a stored key names (None for no key or one this module did not write)."""
        parts = (key or "").split(" ")
        if len(parts) != 4 or not parts[1].isdigit():
            return None
        return cls(parts[0], int(parts[1]), parts[2], parts[3])

    def gone(self) -> bool:
        """True when this owner ran on this host and its process no longer runs.

        False for an owner on another host: only its heartbeat can tell.
        """
        if self.host != _host():
            return False
        started = _start_ticks(self.pid)
        if started == "":
            return True
        if started != "-" and self.started != "-":
            return started != self.started
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


def orphaned(owner: str | None, heartbeat_at: datetime | None, *, now: datetime,
             lease_s: float) -> bool:
    """Whether nobody runs a trace stored as running with this owner and heartbeat.

    True when it has no owner or heartbeat (written before leases existed), when the heartbeat
    is older than `lease_s`, or when the owner ran on this host and its process is gone.
    """
    if heartbeat_at is None or owner is None:
        return True
    if heartbeat_at < now - timedelta(seconds=lease_s):
        return True
    found = Owner.parse(owner)
    return found is not None and found.gone()


class Heartbeat:
    """A daemon thread that calls `beat` every `interval_s` seconds until stopped.

    It holds `beat` weakly when it is a bound method, so a store that is dropped without being
    closed does not keep its thread (or its connections) alive; errors are logged and the next
    beat tries again.
    """

    def __init__(self, beat: Callable[[], None], interval_s: float) -> None:
        self._beat = weakref.WeakMethod(beat) if hasattr(beat, "__self__") else lambda: beat
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentrt-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            beat = self._beat()
            if beat is None:
                return
            try:
                beat()
            except Exception as e:  # the database may be briefly away: beat again later
                log.warning("trace heartbeat failed: %s", e)
            del beat

    def stop(self) -> None:
        """Stop the thread and wait for a beat in progress to end."""
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
