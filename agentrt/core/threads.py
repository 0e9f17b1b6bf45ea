"""torch's CPU threads: a fixed number, or one that follows the machine's load.

On a CPU shared with other work, threads that wait for each other at every parallel region are
much slower than one (measured here: batched decoding 13x slower with 2 threads than with 1 at a
load average of 13 on 2 cores), so `configure("auto")` uses every core while the machine is
otherwise idle and one thread while it is busy, re-checked every `poll_s` seconds.

torch keeps the thread count per OS thread once that thread has run a parallel operation: a
setting made in one thread never reaches a worker thread that is already running. So the
setting is a wanted value here, and each work loop (a decode batch of the hf backend, a
training step) calls `apply()` first, which sets the calling thread's count when it differs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

__all__ = ["configure", "apply", "wanted", "on_own_thread"]

_wanted: int | None = None
_follower: threading.Thread | None = None


def wanted() -> int | None:
    """The thread count work loops should use now (None: leave torch's own)."""
    return _wanted


def _pick(cores: int, own: int) -> int:
    others = os.getloadavg()[0] - own  # the load average counts this process's threads too
    return 1 if others > cores / 2 else cores


def configure(threads: int | str | None, poll_s: float = 20.0) -> None:
    """Set the wanted count: a number >= 1, "auto" (follows the load) or None (torch's default).

    Raises:
        ValueError: any other value.
    """
    global _wanted, _follower
    if threads is None:
        _wanted = None
        return
    if threads == "auto":
        cores = os.cpu_count() or 1
        _wanted = _pick(cores, 0)

        def follow() -> None:
            global _wanted
            while True:
                time.sleep(poll_s)
                _wanted = _pick(cores, _wanted or 1)

        if _follower is None:
            _follower = threading.Thread(target=follow, name="torch-threads", daemon=True)
            _follower.start()
        apply()
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a number >= 1, None or 'auto', not {threads!r}")
    _wanted = threads
    apply()


def apply() -> None:
    """Give the calling thread the wanted count (cheap when it has it already)."""
    want = _wanted
    if want is None:
        return
    import torch  # heavy: torch

    if torch.get_num_threads() != want:
        torch.set_num_threads(want)


def on_own_thread(fn: Callable[..., T], *args: Any, name: str = "torch-work", **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` on a new thread; its result, or its exception raised here.

    torch's CPU thread pool (OpenMP) belongs to the OS thread that first runs a parallel
    operation and lives as long as that thread. With more pool threads in the process than
    cores, every pool stops spinning between operations and waits in the kernel instead: on 2
    cores a decode step ran at 0.55x once a second pool existed. Heavy one-off work (a training
    run) on a thread of its own leaves no pool behind for later decoding. The thread is a daemon:
    Ctrl-C reaches the caller, and the work is dropped with the process.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = fn(*args, **kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller
            box["error"] = e

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(0.2)  # a bounded wait keeps the caller interruptible
    if "error" in box:
        raise box["error"]
    return box["result"]
