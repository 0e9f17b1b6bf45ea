"""The Ray executor: every item is a Ray task; each worker process builds its context once.

    executor = RayExecutor(functools.partial(Runtime, settings), address="ray://head:10001")

Items run as Ray tasks (`cpus_per_item` CPUs each, so a cluster of N CPUs runs N at a time).
The work function, the factory and the items must pickle (Ray's cloudpickle); results come back
the same way, so return plain records. A worker process calls the factory the first time it
runs an item of this executor and keeps that context for the executor's later items and batches
(a runtime with its backend client and store connection: built once per worker, not per item);
when an item of another executor arrives, contexts no item is using are closed first. The
worker's tools and sandboxes run on the worker's machine; whatever the context writes (traces)
goes where its settings point, so a cluster needs a store every worker reaches (PostgreSQL).

A worker that dies mid-item has its item run again (Ray retries tasks lost to a crashed process,
`max_retries` times); an item that still fails comes back as `Finished.error`. `interrupt()`
cancels queued tasks, interrupts running ones (KeyboardInterrupt in the task, so a solve records
its trace as interrupted) and, after `grace_s`, kills the workers of any still running.

This module knows nothing of solves; `ray` is imported only when a batch starts.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from agentrt.execute.base import Finished, WorkFn

__all__ = ["RayExecutor"]

_CONTEXTS: dict[str, list[Any]] = {}  # per worker process: executor token -> [context, users]
_CONTEXT_LOCK = threading.Lock()


def _close(context: Any) -> None:
    close = getattr(context, "close", None)
    try:
        if callable(close):
            close()
    except Exception:  # noqa: BLE001 - the old context's resources are gone already
        pass


def _acquire(token: str, factory: Callable[[], Any]) -> Any:
    """This worker's context for `token` (built on first use); contexts of other executors
    that no item is using are closed first, so a worker keeps one model or client at a time."""
    with _CONTEXT_LOCK:
        if token not in _CONTEXTS:
            for old in [t for t, (_, users) in _CONTEXTS.items() if users == 0]:
                _close(_CONTEXTS.pop(old)[0])
            _CONTEXTS[token] = [factory(), 0]
        entry = _CONTEXTS[token]
        entry[1] += 1
        return entry[0]


def _release(token: str) -> None:
    with _CONTEXT_LOCK:
        if token in _CONTEXTS:
            _CONTEXTS[token][1] -= 1


def _run_item(token: str, factory: Callable[[], Any], fn: WorkFn, item: Any) -> Any:
    """The task body on a worker: the worker's context for this executor, then the item."""
    context = _acquire(token, factory)
    try:
        return fn(context, item, threading.Event())
    finally:
        _release(token)


_REMOTE: Any = None


def _remote() -> Any:
    global _REMOTE
    if _REMOTE is None:
        import ray  # heavy: ray

        _REMOTE = ray.remote(_run_item)
    return _REMOTE


class _RayBatch:
    def __init__(self, executor: "RayExecutor", fn: WorkFn, items: Sequence[Any]):
        import ray  # heavy: ray

        self._ray, self._grace = ray, executor.grace_s
        token = executor.token
        factory_ref, fn_ref = ray.put(executor.factory), ray.put(fn)
        task = _remote().options(num_cpus=executor.cpus_per_item,
                                 max_retries=executor.max_retries, retry_exceptions=False)
        self._pending: dict[Any, int] = {
            task.remote(token, factory_ref, fn_ref, item): i for i, item in enumerate(items)}

    def _finished(self, ref: Any, late: bool = False) -> Finished:
        index = self._pending.pop(ref)
        try:
            return Finished(index, self._ray.get(ref), None, late)
        except self._ray.exceptions.RayTaskError as e:  # the work function raised: its error
            cause = getattr(e, "cause", None)
            return Finished(index, None, cause if isinstance(cause, BaseException) else e, late)
        except Exception as e:  # lost worker past its retries, cancelled task, ...
            return Finished(index, None, e, late)

    def _ready(self, timeout: float) -> list[Any]:
        refs = list(self._pending)
        done, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        if done:  # gather everything else already finished in one go
            done, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
        return done

    def __iter__(self) -> Iterator[Finished]:
        while self._pending:
            for ref in self._ready(0.5):
                yield self._finished(ref)

    def interrupt(self) -> list[Finished]:
        for ref in self._pending:  # queued: dropped; running: KeyboardInterrupt in the task
            self._ray.cancel(ref, force=False)
        late: list[Finished] = []
        deadline = time.monotonic() + self._grace
        try:
            while self._pending and time.monotonic() < deadline:
                late += [self._finished(ref, late=True) for ref in self._ready(0.2)]
        finally:  # past the grace, or Ctrl-C again: kill the workers of items still running
            for ref in list(self._pending):
                self._ray.cancel(ref, force=True)
                self._pending.pop(ref)
        return [f for f in late if f.error is None]

    def close(self) -> None:
        if self._pending:
            self.interrupt()

    def __enter__(self) -> "_RayBatch":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class RayExecutor:
    """Ray tasks on a cluster; each worker builds its context with `factory`.

    Args:
        factory: a picklable callable that builds the work function's context on a worker
            (e.g. `functools.partial(Runtime, settings)`).
        address: the cluster to join (`ray://host:10001` or `host:6379`); None joins the one
            this process already initialised, else starts a local one (`ray.init()`).
        num_cpus: CPUs of a local cluster started here (ignored when joining one).
        cpus_per_item: CPUs one item reserves (fractions run several items per CPU).
        max_retries: runs of an item whose worker died, after the first.
        grace_s: how long `interrupt()` waits for running items before killing their workers.
    """

    name = "ray"

    def __init__(self, factory: Callable[[], Any], *, address: str | None = None,
                 num_cpus: int | None = None, cpus_per_item: float = 1.0, max_retries: int = 3,
                 grace_s: float = 10.0):
        if cpus_per_item <= 0:
            raise ValueError(f"cpus_per_item must be positive, got {cpus_per_item}")
        self.factory, self.address, self.num_cpus = factory, address, num_cpus
        self.cpus_per_item, self.max_retries, self.grace_s = cpus_per_item, max_retries, grace_s
        self._started = False
        self.token = uuid.uuid4().hex  # names this executor's contexts on the workers

    def _connect(self) -> None:
        import ray  # heavy: ray

        if ray.is_initialized():
            return
        local = self.address in (None, "", "local")
        ray.init(address=None if local else self.address,
                 num_cpus=self.num_cpus if local else None, log_to_driver=False)
        self._started = True

    def map(self, fn: WorkFn, items: Sequence[Any], *, context: Any = None) -> _RayBatch:
        """Start every item as a task (`context` is unused: workers build their own)."""
        self._connect()
        return _RayBatch(self, fn, items)

    def shutdown(self) -> None:
        """Disconnect from (or stop) the cluster this executor connected to; idempotent."""
        if self._started:
            import ray  # heavy: ray

            ray.shutdown()
            self._started = False
