"""A micro-batcher: gathers single calls from many threads into one batched call.

Callers block in `submit(item)`. One worker thread takes the first waiting item, keeps collecting
while items arrive less than `wait_s` apart (at most 10 x `wait_s`, or until `max_weight` is
reached), runs the whole batch through `run`, and hands each caller its own result. While a
batch runs, new items queue up and form the next batch, so under load batches fill without
waiting. If a batch fails, its items are retried one by one so
a single bad item fails only its own caller.

This module knows nothing about models or requests: items and results are opaque.
"""

from __future__ import annotations

import math
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["BatchStats", "MicroBatcher", "QueueWorker", "WaitingRows", "collect_burst"]

T = TypeVar("T")
R = TypeVar("R")

_CLOSE = object()
_BURST = 10  # a burst may extend collection to this many times `wait_s`


def collect_burst(source: queue.Queue, first: Any, wait_s: float, marker: object,
                  weight: Callable[[Any], int] = lambda _entry: 1,
                  limit: float = math.inf) -> tuple[list, bool]:
    """`first` and the entries of `source` that follow it less than `wait_s` apart (a burst of
    requests a server parses one by one), for at most `_BURST` times `wait_s` in all and until
    their weights reach `limit`: a lone entry waits `wait_s`, a burst rides together. The flag
    says whether `marker` (a close request) was met; it is not in the list."""
    batch, total = [first], weight(first)
    start = time.monotonic()
    deadline = start + wait_s
    while total < limit:
        remaining = deadline - time.monotonic()
        try:
            entry = source.get(timeout=remaining) if remaining > 0 else source.get_nowait()
        except queue.Empty:
            break
        if entry is marker:
            return batch, True
        batch.append(entry)
        total += weight(entry)
        deadline = min(time.monotonic() + wait_s, start + _BURST * wait_s)
    return batch, False


@dataclass
class BatchStats:
    """Counters of the batches run so far (recent sizes kept, older ones only counted); `joined`
    counts items that entered a batch already running (continuous batching only)."""

    batches: int = 0
    items: int = 0
    max_size: int = 0
    joined: int = 0
    recent_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=1000))

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.max_size = max(self.max_size, size)
        self.recent_sizes.append(size)


class WaitingRows:
    """Rows of submitted jobs that have not entered a batch yet: a queue depth read on demand.

    A job counts `job.rows - job.entered` until its future is done; jobs are held weakly, so
    nothing needs removing.
    """

    def __init__(self) -> None:
        self._jobs: weakref.WeakKeyDictionary[Any, Future] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def add(self, jobs: list, futures: list[Future]) -> None:
        with self._lock:
            self._jobs.update(zip(jobs, futures))

    @property
    def count(self) -> int:
        with self._lock:
            jobs = list(self._jobs.items())
        return sum(job.rows - job.entered for job, fut in jobs if not fut.done())


class QueueWorker:
    """A queue served by one worker thread (`_loop`, started on first use) until a close marker.

    Subclasses implement `_loop`, which reads `self._queue` and returns once it meets `_CLOSE`.
    """

    def __init__(self, name: str, kind: str):
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._name, self._kind = name, kind

    def start(self, first: Callable[[], Any]) -> Future:
        """Start the worker thread now, running `first` on it before it serves the queue; the
        future holds what `first` returned or raised.

        For work that must share the worker's OS thread: torch's CPU thread pool (OpenMP) is
        per OS thread, and two pools on a small machine each run at about one core's speed
        (`agentrt.llm.hf` loads its model on its decode thread for this reason).

        Raises:
            RuntimeError: the worker is closed or already started.
        """
        done: Future = Future()

        def run() -> None:
            try:
                done.set_result(first())
            except BaseException as e:  # noqa: BLE001 - handed to whoever waits on `done`
                done.set_exception(e)
            self._loop()

        with self._lock:
            if self._closed or self._thread is not None:
                raise RuntimeError(f"the {self._kind} is closed or already started")
            self._spawn(run)
        return done

    def _spawn(self, target: Callable[[], None]) -> None:
        """Start the worker thread on `target` (the caller holds the lock)."""
        self._thread = threading.Thread(target=target, name=self._name, daemon=True)
        self._thread.start()

    def _enqueue(self, entries: list) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"the {self._kind} is closed")
            if self._thread is None:
                self._spawn(self._loop)
            for entry in entries:
                self._queue.put(entry)

    def close(self) -> None:
        """Stop the worker after the work already queued; later submits raise."""
        with self._lock:
            self._closed = True
            thread = self._thread
            self._queue.put(_CLOSE)
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _loop(self) -> None:
        raise NotImplementedError


class MicroBatcher(QueueWorker, Generic[T, R]):
    """Batches `submit` calls from many threads into calls of `run`.

    Args:
        run: takes a list of items, returns one result per item in order.
        max_weight: a batch closes once its items' weights add up to this.
        wait_s: how long to keep collecting after the first item arrives.
        weight: an item's weight (for example its number of sequences); 1 by default.
        name: name of the worker thread.
    """

    def __init__(
        self,
        run: Callable[[list[T]], list[R]],
        max_weight: int = 8,
        wait_s: float = 0.005,
        weight: Callable[[T], int] | None = None,
        name: str = "micro-batcher",
    ):
        if max_weight < 1 or wait_s < 0:
            raise ValueError("max_weight must be >= 1 and wait_s >= 0")
        self._run = run
        self._weight = weight or (lambda _item: 1)
        self.max_weight = max_weight
        super().__init__(name, "micro-batcher")
        self.wait_s = wait_s
        self.stats = BatchStats()

    def submit(self, item: T) -> R:
        """Queue `item`, block until its batch ran, return its result or raise its error."""
        fut: Future = Future()
        self._enqueue([(item, fut)])
        return fut.result()

    def _loop(self) -> None:
        closing = False
        while not closing:
            entry = self._queue.get()
            if entry is _CLOSE:
                break
            batch, closing = collect_burst(self._queue, entry, self.wait_s, _CLOSE,
                                           lambda e: self._weight(e[0]), self.max_weight)
            self._execute(batch)

    def _execute(self, batch: list[tuple]) -> None:
        items = [item for item, _ in batch]
        with self._lock:
            self.stats.record(len(items))
        try:
            results = self._run(items)
        except BaseException as e:  # noqa: BLE001 - handed to the callers, never swallowed
            if len(batch) == 1:
                batch[0][1].set_exception(e)
                return
            for entry in batch:  # isolate the failing item
                self._execute([entry])
            return
        if len(results) != len(batch):
            err = RuntimeError(f"batch run returned {len(results)} results for {len(batch)} items")
            for _, fut in batch:
                fut.set_exception(err)
            return
        for (_, fut), result in zip(batch, results):
            fut.set_result(result)
