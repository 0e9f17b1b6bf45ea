"""Serving one job: idempotency, admission, running, and the response (JSON or SSE).

`Service` owns what requests share: the runtime (its store wrapped so trace ids can be named
before a solve starts), the thread pool the blocking work runs in, the concurrency limiter and
the idempotency records. `respond` is the one path every generating route takes:

    Idempotency-Key? -> replay a finished result / wait for a running one / claim the key
    -> admit (429 past the concurrency limit) -> run the job's tasks in the pool
    -> JSON body, or SSE chunks as events arrive -> record the result for replays

A passthrough stream answers 200 only once its first event is in (the first token, or a
keep-alive tick after 15 s): a request the backend refuses up front (a schema it cannot compile,
an unreachable server) gets its real status and error body instead of a 200 and an error event.

A client that disconnects, or a request past its deadline, cancels the work (solves stop before
their next LLM or tool call) and frees an idempotency claim so a retry runs afresh. Shutdown
(`agentrt.server.shutdown.Drain`) refuses new work with 503 and, past its grace, aborts the
rest the same way: 503 for a plain request, an error event for a stream.
This module knows HTTP (Starlette responses) and the job machinery; formats are passed in.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from agentrt.core import metrics
from agentrt.runtime import Runtime
from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError, to_api_error
from agentrt.server.idempotency import IdempotencyStore
from agentrt.server.jobs import Job, TraceIdStore, tasks
from agentrt.server.limits import ConcurrencyLimiter
from agentrt.server.metrics import MODEL_STATE
from agentrt.server.shutdown import Drain
from agentrt.server.streaming import (
    SSE_DONE,
    Execution,
    Gone,
    Outcome,
    ShuttingDown,
    Timeout,
    make_sse_response,
    sse,
    wait_disconnect,
)
from agentrt.server.wire import dumps, usage_dict

__all__ = ["Service"]

log = logging.getLogger("agentrt.server")
_KEY_CHARS = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:~+/=")


def _timeout_error(seconds: float) -> APIError:
    # A retry would run as long again: the SDKs are told not to (they retry every 5xx).
    return APIError(504, f"The request did not finish within the server's deadline of "
                         f"{seconds:g} s; its work was cancelled.", type="timeout_error",
                    code="request_timeout", retry=False)


def _shutting_down() -> APIError:
    # Another worker, or this server restarted, will serve the retry.
    return APIError(503, "The server is shutting down; retry the request.", type="server_error",
                    code="shutting_down", retry=True)


def _warm_up() -> None:
    """Import what the first solve would, so the first request does not wait seconds for it."""
    for name in ("agentrt.workflows.recorder", "agentrt.workflows.fast", "agentrt.router"):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional part that is not installed: its first use will say so
            pass


class Service:
    """Everything the generating routes share. See the module docstring.

    Args:
        runtime: the runtime whose backend and store serve the requests.
        config: the server config.
    """

    def __init__(self, runtime: Any, config: ServerConfig):
        store = runtime.store
        # The same backend, store and tools; the store wrapped so a solve's trace id can be
        # chosen before it starts (it goes into the response id and headers of a stream).
        self.runtime = Runtime(runtime.settings, backend=runtime.backend,
                               store=TraceIdStore(store), tools=runtime.tools)
        self.config = config
        self.limiter = ConcurrencyLimiter(config.max_concurrency, config.retry_after_s)
        self.pool = ThreadPoolExecutor(config.max_concurrency * config.max_n,
                                       thread_name_prefix="agentrt-serve")
        self.idempotency = IdempotencyStore(store.engine, ttl_s=config.idempotency_ttl_s,
                                            stale_s=config.request_timeout_s + 60.0)
        self.drain = Drain(config.shutdown_grace_s, self._abandon)
        _warm_up()

    def _abandon(self, trace_id: str) -> None:
        self.runtime.cancel_trace(trace_id, "the server shut down before the solve finished")

    async def close(self) -> None:
        """Drain the requests in flight (see `Drain`), then stop the pool."""
        await self.drain.wait()
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def respond(self, job: Job, fmt: Any, request: Any) -> Any:
        """Serve `job` for `request`, formatted by `fmt` (ChatFormat or TextFormat)."""
        setattr(request.state, MODEL_STATE, job.model)  # a served model: a bounded label
        if self.drain.closing:
            raise _shutting_down()
        claim = await self._claim(request, job, fmt)
        if claim is not None and claim.state == "done":
            return self._replay(job, fmt, claim.body, claim.trace_ids)
        key = claim.key if claim is not None else None
        slots = max(1, -(-job.choices // self.config.max_n))
        release = functools.partial(self.limiter.release, slots)
        try:
            self.limiter.acquire(slots)
        except APIError:
            await self._release(key)
            raise
        deadline = time.monotonic() + self.config.request_timeout_s
        try:
            work = tasks(job, self.runtime, self.config.stream_step_chars)
        except BaseException:
            release()
            await self._release(key)
            raise
        try:
            execution = Execution(work, self.pool, release, deadline)
        except RuntimeError:  # shutting down (the execution gave its slot back)
            await self._release(key)
            raise _shutting_down() from None
        self.drain.track(execution, job.trace_ids)
        rid = fmt.prefix + (job.trace_ids[0] if job.trace_ids else uuid.uuid4().hex)
        created = int(time.time())
        headers = {"X-Request-Id": rid}
        if job.trace_ids:
            headers["X-Agentrt-Trace-Id"] = ",".join(job.trace_ids)
        if job.stream:
            events = execution.events()
            first = await self._first_event(events, key) if job.mode is None else None
            body = self._stream(execution, _prepend(first, events), job, fmt, rid, created, key)
            return make_sse_response(body, headers)
        return await self._collect(execution, job, fmt, rid, created, key, request, headers)

    async def _collect(self, execution: Execution, job: Job, fmt: Any, rid: str, created: int,
                       key: str | None, request: Any, headers: dict[str, str]) -> Any:
        from starlette.responses import Response  # heavy: starlette

        try:
            async with self._released_on_error(key):
                outcome = await execution.collect(lambda: wait_disconnect(request.receive))
        except Gone:
            return Response(status_code=499)  # nobody is listening any more
        body = fmt.body(rid, created, job, outcome.choices, self._usage(outcome))
        _count_tokens(job, outcome)
        await self._complete(key, body, job.trace_ids)
        return Response(dumps(body), media_type="application/json", headers=headers)

    async def _first_event(self, events: Any, key: str | None) -> tuple | None:
        """The stream's first event; its failure is the request's error (before any 200)."""
        async with self._released_on_error(key):
            try:
                return await anext(events)
            except StopAsyncIteration:
                return None

    @asynccontextmanager
    async def _released_on_error(self, key: str | None) -> AsyncIterator[None]:
        """Release the request's Idempotency-Key claim when the body fails, and turn a timeout
        or a shutdown into the request's HTTP error."""
        try:
            yield
        except Timeout:
            await self._release(key)
            raise _timeout_error(self.config.request_timeout_s) from None
        except ShuttingDown:
            await self._release(key)
            raise _shutting_down() from None
        except BaseException:
            await self._release(key)
            raise

    async def _stream(self, execution: Execution, events: Any, job: Job, fmt: Any, rid: str,
                      created: int, key: str | None):
        parts, finished = [], False
        try:
            for chunk in fmt.opening(rid, created, job):
                yield sse(dumps(chunk))
            async for event in events:
                if event[0] == "text":
                    chunk = fmt.text(rid, created, job, event[1], event[2], event[3])
                    if chunk is not None:
                        yield sse(dumps(chunk))
                elif event[0] == "part":
                    parts.append(event[1])
                    for choice in event[1].choices:
                        yield sse(dumps(fmt.finish(rid, created, job, choice)))
                else:
                    yield b": keep-alive\n\n"
            outcome = Outcome(parts)
            _count_tokens(job, outcome)
            if job.include_usage:
                yield sse(dumps(fmt.usage(rid, created, job, self._usage(outcome))))
            finished = True
            await self._complete(key, fmt.body(rid, created, job, outcome.choices,
                                               self._usage(outcome)), job.trace_ids)
            yield SSE_DONE
        except Timeout:
            yield sse(dumps(_timeout_error(self.config.request_timeout_s).body()))
            yield SSE_DONE
        except ShuttingDown:
            yield sse(dumps(_shutting_down().body()))
            yield SSE_DONE
        except Exception as e:  # noqa: BLE001 - becomes an error event; the status is sent
            yield sse(dumps(to_api_error(e).body()))
            yield SSE_DONE
        finally:
            if not finished:
                execution.cancel.set()
                if key is not None:  # may run while being cancelled: do not await; its own
                    # thread, since the pool may already be shut down
                    threading.Thread(target=self._release_now, args=(key,), daemon=True).start()

    @staticmethod
    def _usage(outcome: Outcome) -> dict[str, int]:
        return usage_dict(outcome.usage.prompt_tokens, outcome.usage.completion_tokens)

    # ---- idempotency ------------------------------------------------------------------------

    async def _claim(self, request: Any, job: Job, fmt: Any):
        given = request.headers.get("idempotency-key")
        if given is None:
            return None
        if not 1 <= len(given) <= 255 or not set(given) <= _KEY_CHARS:
            raise APIError(400, "Invalid Idempotency-Key header: use 1 to 255 characters of "
                                "letters, digits and -_.:~+/=.", param="Idempotency-Key",
                           code="invalid_idempotency_key")
        raw = await request.body()
        canonical = dumps({"path": request.url.path, "body": json.loads(raw)})
        fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
        key = f"{request.state.key_id}:{given}"
        deadline = time.monotonic() + self.config.request_timeout_s
        while True:
            if self.drain.closing:  # the first request will not finish here any more
                raise _shutting_down()
            claim = await asyncio.to_thread(self.idempotency.begin, key, fingerprint)
            if claim.state in ("new", "done"):
                return claim
            if claim.state == "mismatch":
                raise APIError(422, "This Idempotency-Key was already used with a different "
                                    "request.", param="Idempotency-Key",
                               code="idempotency_key_reused")
            if time.monotonic() > deadline:
                raise APIError(409, "A request with this Idempotency-Key is still running.",
                               param="Idempotency-Key", code="idempotency_key_in_use")
            await asyncio.sleep(0.1)  # the first request is still running: wait for its result

    def _replay(self, job: Job, fmt: Any, body: dict[str, Any], trace_ids: list[str]) -> Any:
        from starlette.responses import Response  # heavy: starlette

        headers = {"Idempotent-Replayed": "true", "X-Request-Id": body["id"]}
        if trace_ids:
            headers["X-Agentrt-Trace-Id"] = ",".join(trace_ids)
        if not job.stream:
            return Response(dumps(body), media_type="application/json", headers=headers)

        async def chunks():
            for chunk in fmt.replay(body, job):
                yield sse(dumps(chunk))
            yield SSE_DONE

        return make_sse_response(chunks(), headers)

    async def _complete(self, key: str | None, body: dict[str, Any], trace_ids: list[str]) -> None:
        if key is not None:
            await asyncio.to_thread(self.idempotency.complete, key, body, trace_ids)

    async def _release(self, key: str | None) -> None:
        if key is not None:
            await asyncio.to_thread(self._release_now, key)

    def _release_now(self, key: str) -> None:
        try:
            self.idempotency.release(key)
        except Exception as e:  # the claim goes stale after the deadline: a retry takes it over
            log.warning("could not release Idempotency-Key claim: %s", e)


def _count_tokens(job: Job, outcome: Outcome) -> None:
    metrics.PROMPT_TOKENS.labels(job.model).inc(outcome.usage.prompt_tokens)
    metrics.COMPLETION_TOKENS.labels(job.model).inc(outcome.usage.completion_tokens)


async def _prepend(first: tuple | None, events: Any):
    """`events` with an already received first event put back in front."""
    if first is not None:
        yield first
    async for event in events:
        yield event
