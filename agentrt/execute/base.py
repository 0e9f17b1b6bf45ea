"""The executor interface and the local one: a thread pool in this process.

An executor maps a work function `fn(context, item, cancel) -> result` over items and hands back
a `Batch`: iterate it for `Finished` records as items finish (in finishing order, each with its
index, so callers keep ordered or keyed results), call `interrupt()` on Ctrl-C to stop the rest
and collect what finished meanwhile, and `close()` (or use it as a context manager) at the end.
`context` is what the function works with (a runtime); the local executor shares the caller's
across its threads, the Ray executor builds one per worker process with its factory.

What counts as a failure is the work function's business: an exception it raises is handed
back as `Finished.error`, never raised from the iteration.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Batch", "Executor", "Finished", "LocalExecutor", "WorkFn"]

WorkFn = Callable[[Any, Any, threading.Event], Any]


@dataclass
class Finished:
    """One item's outcome: its index in the batch, and its result or the error it raised.

    `late` marks an item that finished while the batch was being interrupted.
    """

    index: int
    result: Any = None
    error: BaseException | None = None
    late: bool = False


class Batch(Protocol):
    """A running map: iterate for finished items; interrupt or close it."""

    def __iter__(self) -> Iterator[Finished]: ...

    def interrupt(self) -> list[Finished]:
        """Stop every unfinished item; return those that finished (without error) meanwhile."""
        ...

    def close(self) -> None: ...


class Executor(Protocol):
    """Runs `fn(context, item, cancel)` over `items`; see the module docstring."""

    name: str

    def map(self, fn: WorkFn, items: Sequence[Any], *, context: Any = None) -> Batch: ...


class _LocalBatch:
    def __init__(self, workers: int, fn: WorkFn, items: Sequence[Any], context: Any,
                 prefix: str):
        self.cancel = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=prefix)
        self._index: dict[Future, int] = {
            self._pool.submit(fn, context, item, self.cancel): i for i, item in enumerate(items)}
        self._pending: set[Future] = set(self._index)

    def _finished(self, f: Future, late: bool = False) -> Finished:
        error = f.exception()
        return Finished(self._index[f], None if error else f.result(), error, late)

    def __iter__(self) -> Iterator[Finished]:
        while self._pending:
            done, _ = wait(self._pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for f in done:
                self._pending.discard(f)
                yield self._finished(f)

    def interrupt(self) -> list[Finished]:
        self.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        late = [self._finished(f, late=True) for f in self._pending
                if f.done() and not f.cancelled()]
        self._pending.clear()
        return [f for f in late if f.error is None]

    def close(self) -> None:
        if self._pending:  # left early (an error in the caller): stop the rest
            self.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "_LocalBatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalExecutor:
    """Threads in this process, `workers` at a time, sharing the caller's context.

    Args:
        workers: concurrent items (the hf backend batches concurrent calls into one forward).
        thread_name_prefix: names the threads (visible in stack dumps).
    """

    name = "local"

    def __init__(self, workers: int = 1, *, thread_name_prefix: str = "solve"):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        self.prefix = thread_name_prefix

    def map(self, fn: WorkFn, items: Sequence[Any], *, context: Any = None) -> _LocalBatch:
        return _LocalBatch(self.workers, fn, items, context, self.prefix)
