"""Guards in front of the routes: API keys, body size, concurrency.

`GuardMiddleware` is plain ASGI so it runs before FastAPI parses anything: it checks the Bearer
key (constant-time, on every route but `/health`), then reads the body itself with a running byte
count, so a body over the limit gets 413 whether or not it declared a Content-Length (chunked
uploads are cut off as soon as they pass the limit, without buffering the rest), and hands the
buffered body on to the app. `ConcurrencyLimiter` admits a bounded number of requests per worker
and turns the rest away with 429 and Retry-After instead of queueing them without bound.
This module knows HTTP and the server config, nothing about models or solving.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from typing import Any

from agentrt.core import metrics
from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError

__all__ = ["GuardMiddleware", "ConcurrencyLimiter", "key_id"]

_OPEN_PATHS = {"/health"}
_BODY_METHODS = {"POST", "PUT", "PATCH"}


def key_id(key: str | None) -> str:
    """A short non-reversible id of an API key (to scope idempotency keys per caller)."""
    if not key:
        return "anonymous"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class _TooLarge(Exception):
    pass


class GuardMiddleware:
    """ASGI middleware: authentication, then the body size limit, then the app.

    Args:
        app: the wrapped ASGI app.
        config: the server config (keys, body limit).
    """

    def __init__(self, app: Any, config: ServerConfig):
        self.app = app
        self.keys = [k.encode() for k in config.api_keys]
        self.max_body = config.max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        state = scope.setdefault("state", {})
        if self.keys and scope["path"] not in _OPEN_PATHS:
            err, key = self._authenticate(headers.get("authorization"))
            if err is not None:
                await _send_error(send, err)
                return
            state["key_id"] = key_id(key)
        else:
            state["key_id"] = "anonymous"
        if scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_error(send, APIError(400, "Invalid Content-Length header."))
                return
            if int(declared) > self.max_body:
                await _send_error(send, self._too_large())
                return
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            await _send_error(send, self._too_large())
            return
        except _Disconnected:
            return
        await self.app(scope, _replay(body, receive), send)

    def _authenticate(self, header: str | None) -> tuple[APIError | None, str | None]:
        if not header:
            return APIError(401, "You didn't provide an API key. Provide it in the Authorization "
                                 "header as 'Bearer YOUR_KEY'.", code="missing_api_key",
                            headers={"WWW-Authenticate": "Bearer"}), None
        scheme, _, given = header.partition(" ")
        given = given.strip()
        ok = False
        for key in self.keys:  # every key is compared, so timing does not reveal which matched
            ok |= hmac.compare_digest(key, given.encode("utf-8", "surrogateescape"))
        if scheme.lower() != "bearer" or not ok:
            return APIError(401, "Incorrect API key provided.", code="invalid_api_key",
                            headers={"WWW-Authenticate": "Bearer"}), None
        return None, given

    def _too_large(self) -> APIError:
        return APIError(413, f"The request body is larger than the limit of {self.max_body} bytes.",
                        code="request_too_large", headers={"Connection": "close"})

    async def _read_body(self, receive: Any) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _Disconnected(Exception):
    pass


def _replay(body: bytes, receive: Any) -> Any:
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the client to disconnect

    return replay


async def _send_error(send: Any, err: APIError) -> None:
    payload = json.dumps(err.body()).encode()
    headers = [(b"content-type", b"application/json"),
               (b"content-length", str(len(payload)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class ConcurrencyLimiter:
    """Admits at most `limit` slots of work at once; `acquire` raises a 429 APIError beyond that.

    A request takes one slot per `max_n` choices it starts (a chat request of up to `max_n`
    choices one slot, a legacy completions request of 4 x `max_n` prompts and choices four),
    so a request that fans out cannot run more work under one slot than the server's thread
    pool was sized for. A request larger than the whole limit is admitted only when nothing
    else runs. A slot is held until the work it admitted has really finished (not just until
    the client was answered), so the limit reflects the load on the backend.
    """

    def __init__(self, limit: int, retry_after_s: int):
        self.limit = limit
        self.retry_after_s = retry_after_s
        self._in_flight = 0
        self._lock = threading.Lock()
        metrics.REQUESTS_IN_FLIGHT.track(self, lambda limiter: limiter.in_flight)

    @property
    def in_flight(self) -> int:
        """Slots in use."""
        return self._in_flight

    def acquire(self, slots: int = 1) -> None:
        """Take `slots` slots or raise APIError(429)."""
        with self._lock:
            if self._in_flight and self._in_flight + slots > self.limit:
                raise APIError(429, f"Too many requests in flight (limit {self.limit}); retry "
                                    f"after {self.retry_after_s} s.", type="rate_limit_error",
                               code="rate_limit_exceeded",
                               headers={"Retry-After": str(self.retry_after_s)})
            self._in_flight += slots

    def release(self, slots: int = 1) -> None:
        with self._lock:
            self._in_flight = max(0, self._in_flight - slots)
