"""Running a job's blocking tasks from async code: results, events, deadlines, disconnects.

`Execution` submits the tasks to a thread pool and bridges what they report (text as it appears,
finished parts, errors) into an asyncio queue. `collect` awaits a non-streamed result while
watching the deadline and the client connection; `events` yields the stream of events under the
same deadline, with keep-alive ticks while a solve is quiet. Whatever ends a request early (the
client going away, the deadline, an error in a sibling task) sets the execution's cancel event,
so solves stop before their next LLM or tool call; `abort` does the same when the server shuts
down, and the waiting request gets `ShuttingDown`. The concurrency slot is released only when
every task has really finished. `make_sse_response` always listens for the client disconnecting, on
any ASGI server, and cancels the stream when it does.

This module knows asyncio, threads and ASGI; nothing about the OpenAI wire format or models.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from typing import Any

import anyio

from agentrt.core.types import Usage
from agentrt.server.jobs import Part, Task

__all__ = ["Execution", "Outcome", "Gone", "Timeout", "ShuttingDown", "make_sse_response",
           "wait_disconnect", "sse", "SSE_DONE"]

SSE_DONE = b"data: [DONE]\n\n"
KEEPALIVE_S = 15.0


def sse(payload: str) -> bytes:
    """One server-sent event carrying a JSON payload."""
    return f"data: {payload}\n\n".encode()


class Gone(Exception):
    """The client disconnected before the result was ready."""


class Timeout(Exception):
    """The request's deadline passed."""


class ShuttingDown(Exception):
    """The server is shutting down and gave up on the request's work."""


class Outcome:
    """Merged parts of a finished job: choices by index, summed usage, trace ids in order."""

    def __init__(self, parts: list[Part]):
        self.choices = sorted((c for p in parts for c in p.choices), key=lambda c: c.index)
        self.usage = sum((p.usage for p in parts), Usage())
        self.trace_ids = [t for p in parts for t in p.trace_ids]


class Execution:
    """The tasks of one job, running in `pool`.

    Args:
        tasks: blocking callables (see `agentrt.server.jobs.tasks`).
        pool: where they run.
        on_done: called once every task has finished, whatever the outcome (frees the slot).
        deadline: `time.monotonic()` value after which the request is abandoned.
    """

    def __init__(self, tasks: list[Task], pool: Executor, on_done: Callable[[], None],
                 deadline: float):
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[tuple] = asyncio.Queue()
        self.cancel = threading.Event()
        self.deadline = deadline
        self._aborted = self.loop.create_future()
        self._left = len(tasks)
        self._lock = threading.Lock()
        self._on_done = on_done
        self.futures = []
        for k, task in enumerate(tasks):
            try:
                self.futures.append(asyncio.wrap_future(pool.submit(self._run, task)))
            except RuntimeError:  # the pool is shutting down: account for what never started
                self.cancel.set()
                self._finished(len(tasks) - k)
                raise

    def _post(self, event: tuple) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # the event loop is gone (server shutting down)
            self.cancel.set()

    def _run(self, task: Task) -> Part:
        try:
            part = task(lambda i, f, t: self._post(("text", i, f, t)), self.cancel)
            self._post(("part", part))
            return part
        except BaseException as e:
            self.cancel.set()  # siblings stop too: the request has failed
            self._post(("error", e))
            raise
        finally:
            self._finished()

    def _finished(self, count: int = 1) -> None:
        with self._lock:
            self._left -= count
            last = self._left == 0
        if last:
            self._on_done()

    @property
    def done(self) -> bool:
        """Whether every task has finished."""
        return self._left <= 0

    def abort(self) -> None:
        """Give up on the work (call in the loop's thread): cancel it, and make the request's
        `collect` or `events` raise ShuttingDown."""
        self.cancel.set()
        if not self._aborted.done():
            self._aborted.set_result(None)
            self.queue.put_nowait(("error", ShuttingDown()))

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    async def collect(self, disconnected: Callable[[], Any]) -> Outcome:
        """Wait for every task; raise Gone on disconnect, Timeout past the deadline.

        Args:
            disconnected: a coroutine function that returns once the client has gone.
        """
        work = asyncio.gather(*self.futures)
        watch = asyncio.ensure_future(disconnected())
        try:
            done, _ = await asyncio.wait({work, watch, self._aborted},
                                         timeout=max(self.remaining(), 0),
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            watch.cancel()
        if work in done:
            return Outcome(work.result())
        self.cancel.set()
        work.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody awaits it now
        if self._aborted in done:
            raise ShuttingDown()
        raise Gone() if watch in done else Timeout()

    async def events(self) -> AsyncIterator[tuple]:
        """Yield ("text", index, field, text), ("part", Part), ("keepalive",) until all parts
        are in; raise the first task error, or Timeout past the deadline."""
        pending = len(self.futures)
        try:
            while pending:
                left = self.remaining()
                if left <= 0:
                    raise Timeout()
                try:
                    event = await asyncio.wait_for(self.queue.get(), min(left, KEEPALIVE_S))
                except asyncio.TimeoutError:
                    yield ("keepalive",)
                    continue
                if event[0] == "error":
                    raise event[1]
                if event[0] == "part":
                    pending -= 1
                yield event
        finally:
            if pending:
                self.cancel.set()
                for f in self.futures:
                    f.add_done_callback(lambda f: f.cancelled() or f.exception())


async def wait_disconnect(receive: Callable[[], Any]) -> None:
    """Return once the ASGI `receive` reports that the client disconnected."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


@functools.lru_cache(maxsize=1)
def _sse_class() -> type:
    from starlette.responses import StreamingResponse  # heavy: starlette

    class SSEResponse(StreamingResponse):
        """Streams its body while listening for the disconnect; a disconnect cancels the body."""

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            async with anyio.create_task_group() as tg:
                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:  # the client went away mid-write
                        pass
                    tg.cancel_scope.cancel()

                tg.start_soon(stream)
                await wait_disconnect(receive)
                tg.cancel_scope.cancel()

    return SSEResponse


def make_sse_response(body: AsyncIterator[bytes], headers: dict[str, str]) -> Any:
    """A streaming `text/event-stream` response that cancels `body` when the client leaves."""
    hdrs = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **headers}
    return _sse_class()(body, media_type="text/event-stream", headers=hdrs)
