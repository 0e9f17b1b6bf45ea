"""A continuous-batching scheduler: jobs from many threads join a running decode between steps.

Callers `submit(job)` from any thread and get a `Future`. One worker thread runs one *session* at
a time (a running decode, see `Session`). Between two decode steps it admits waiting jobs the
session accepts (same sampling settings, same schema) while the session holds fewer than
`max_rows` rows; each job's result is handed back the moment its own rows end, not when the
session ends. A job the session does not accept waits for the next session, and from then on
the running session admits no newer jobs, so it drains and nobody waits behind an endless stream
of compatible work. When the worker is idle, the first job waits up to `wait_s` for company
(longer while a burst keeps arriving, as `MicroBatcher` does) so a burst starts in one prefill.

If a step fails, each job of the session is run again in a session of its own, so a bad job
fails only its own caller (a job that must not run twice fails with the step's error). If the
worker itself breaks, the engine closes and every waiting caller gets an error instead of
waiting forever. This module knows nothing about models: sessions are opaque.
"""

from __future__ import annotations

import logging
import queue
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, Generic, Protocol, TypeVar

from agentrt.llm.batcher import _CLOSE, BatchStats, QueueWorker, collect_burst

__all__ = ["ContinuousEngine", "Session"]

log = logging.getLogger(__name__)

J = TypeVar("J")


class Session(Protocol[J]):
    """One running decode (implemented by a backend)."""

    def accepts(self, job: J) -> bool:
        """Whether `job` may join this session."""

    def add(self, job: J) -> None:
        """Take `job`'s rows (they enter the decode at the next `step`); raise to refuse it."""

    @property
    def load(self) -> int:
        """Rows held: decoding or waiting to enter."""

    def step(self) -> list[tuple[J, Any]]:
        """One decode step; returns the jobs that ended at it, with their results (an exception
        instance as a result is that job's error)."""

    def close(self) -> None:
        """Free the session's state (called once, whatever happened)."""


class ContinuousEngine(QueueWorker, Generic[J]):
    """Runs jobs in continuously batched sessions on one worker thread.

    Args:
        open_session: builds an empty session for a first job.
        max_rows: admission stops while a session holds this many rows.
        wait_s: how long an idle worker waits for more jobs before the first step.
        name: name of the worker thread.
        retry: whether a job of a failed session may run again on its own (default: all).
    """

    def __init__(self, open_session: Callable[[J], Session], max_rows: int = 8,
                 wait_s: float = 0.005, name: str = "decode-engine",
                 retry: Callable[[J], bool] | None = None):
        if max_rows < 1 or wait_s < 0:
            raise ValueError("max_rows must be >= 1 and wait_s >= 0")
        super().__init__(name, "decode engine")
        self._open = open_session
        self._retry = retry or (lambda _job: True)
        self.max_rows, self.wait_s = max_rows, wait_s
        self.stats = BatchStats()  # batches: sessions; max_size: most jobs one session served

    def submit(self, job: J) -> Future:
        """Queue `job`; the future holds its result or its error."""
        return self.submit_many([job])[0]

    def submit_many(self, jobs: Iterable[J]) -> list[Future]:
        """Queue several jobs at once (the worker sees them together)."""
        entries = [(job, Future()) for job in jobs]
        self._enqueue(entries)
        return [fut for _, fut in entries]

    # ---- worker -----------------------------------------------------------------------------

    def _loop(self) -> None:
        pending: deque[tuple[J, Future]] = deque()
        try:
            closing = False
            while True:
                if not pending:
                    if closing:
                        return
                    closing = self._gather(pending, block=True)
                closing = self._gather(pending, block=False) or closing
                if pending:
                    closing = self._run_session(pending, closing)
                    closing = self._gather(pending, block=False) or closing
        except BaseException as e:  # noqa: BLE001 - a broken worker must not leave callers waiting
            log.exception("decode engine worker failed; the engine is closed")
            with self._lock:
                self._closed = True
            self._gather(pending, block=False)
            for _, fut in pending:
                if fut.set_running_or_notify_cancel():
                    fut.set_exception(RuntimeError(f"the decode engine failed: {e!r}"))

    def _gather(self, pending: deque, block: bool) -> bool:
        """Move queued jobs to `pending`; True once the close marker was seen. Blocking, it waits
        for a first job and then collects a burst as long as jobs keep arriving within
        `wait_s` of each other."""
        if block:
            entry = self._queue.get()
            if entry is _CLOSE:
                return True
            burst, closed = collect_burst(self._queue, entry, self.wait_s, _CLOSE)
            pending.extend(burst)
            if closed:
                return True
        closing = False
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return closing
            if entry is _CLOSE:
                closing = True
            else:
                pending.append(entry)

    def _run_session(self, pending: deque, closing: bool) -> bool:
        """Open a session for the oldest pending job and run it until it holds no rows.
        Returns whether the close marker has been seen."""
        job, fut = pending.popleft()
        if not fut.set_running_or_notify_cancel():
            return closing
        try:
            session = self._open(job)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, never swallowed
            fut.set_exception(e)
            return closing
        try:
            session.add(job)
        except BaseException as e:  # noqa: BLE001 - handed to the caller, never swallowed
            fut.set_exception(e)
            _close(session)
            return closing
        live: dict[int, tuple[J, Future]] = {id(job): (job, fut)}
        served, blocked, steps = 1, False, 0
        try:
            while True:
                if steps and not closing:
                    closing = self._gather(pending, block=False)
                while not blocked and pending and session.load < self.max_rows:
                    nxt, nfut = pending[0]
                    if not nfut.cancelled() and not session.accepts(nxt):
                        blocked = True  # it runs next; this session drains first
                        break
                    pending.popleft()
                    if not nfut.set_running_or_notify_cancel():
                        continue
                    try:
                        session.add(nxt)
                    except BaseException as e:  # noqa: BLE001 - that job fails alone
                        nfut.set_exception(e)
                        continue
                    live[id(nxt)] = (nxt, nfut)
                    served += 1
                    if steps:
                        with self._lock:
                            self.stats.joined += 1
                if not live:
                    return closing
                try:
                    finished = session.step()
                except BaseException as e:  # noqa: BLE001 - retried one job at a time below
                    self._isolate(list(live.values()), e)
                    return closing
                steps += 1
                for done, result in finished:
                    _settle(live.pop(id(done))[1], result)
        except BaseException as e:  # noqa: BLE001 - a broken session must not leave callers waiting
            for _, live_fut in live.values():
                if not live_fut.done():
                    live_fut.set_exception(e)
            raise
        finally:
            _close(session)
            with self._lock:
                self.stats.record(served)

    def _isolate(self, entries: list[tuple[J, Future]], error: BaseException) -> None:
        """Run each job of a failed session again in a session of its own; a job that must not
        run twice (`retry` says so: a stream whose tokens went out) fails with `error`."""
        for job, fut in entries:
            if not self._retry(job):
                fut.set_exception(error)
                continue
            session = None
            try:
                session = self._open(job)
                session.add(job)
                while session.load:
                    for done, out in session.step():
                        if done is job:
                            _settle(fut, out)
                if not fut.done():
                    raise RuntimeError("the session ended without a result for this job")
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                if not fut.done():
                    fut.set_exception(e)
            finally:
                if session is not None:
                    _close(session)


def _close(session: Session) -> None:
    try:
        session.close()
    except Exception:  # noqa: BLE001 - the results are out; the worker must go on
        log.exception("closing a decode session failed")


def _settle(fut: Future, result: Any) -> None:
    if isinstance(result, BaseException):
        fut.set_exception(result)
    else:
        fut.set_result(result)
