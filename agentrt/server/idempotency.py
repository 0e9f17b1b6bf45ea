"""Idempotency keys: a retried request gets the first one's result instead of running twice.

Claims live in the trace store's database (table `idempotency_keys`, declared in
`agentrt.store.idempotency`), so all workers and machines sharing the store agree. `begin`
claims a key for a request fingerprint or reports what is there: a finished result to replay, a
request still running (the caller waits), or a different request under the same key (a client
bug: 422). A claim whose request failed or was cancelled is released, so a retry runs afresh;
one left "running" by a crashed worker counts as abandoned after `stale_s`. Finished results are
kept for `ttl_s`, and expired rows are purged now and then.

This module knows SQLAlchemy and that one table; nothing about HTTP or what the body holds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from agentrt.core.errors import StoreError
from agentrt.store.engine import writer
from agentrt.store.idempotency import IdempotencyKey
from agentrt.store.jsonsafe import json_safe
from agentrt.store.records import utcnow

__all__ = ["Claim", "IdempotencyStore"]

_T = IdempotencyKey.__table__
_PURGE_EVERY_S = 600.0


@dataclass
class Claim:
    """What `begin` found: "new" (the caller runs the request), "done" (replay `body`),
    "running" (another request holds the key) or "mismatch" (a different request used it)."""

    state: str
    key: str
    body: dict[str, Any] | None = None
    trace_ids: list[str] = field(default_factory=list)


class IdempotencyStore:
    """Claims and results of idempotency keys in a SQL database.

    Args:
        engine: the trace store's engine (its schema is migrated to include the table).
        ttl_s: how long a finished result is replayed.
        stale_s: after this long a "running" claim is taken to be abandoned.
    """

    def __init__(self, engine: Any, ttl_s: float, stale_s: float):
        self.engine = engine
        self._writer = writer(engine)
        self.ttl = timedelta(seconds=ttl_s)
        self.stale = timedelta(seconds=stale_s)
        self._last_purge = 0.0
        self._lock = threading.Lock()

    def begin(self, key: str, fingerprint: str) -> Claim:
        """Claim `key` for the request with `fingerprint`, or report who holds it."""
        self._maybe_purge()
        for _ in range(3):  # concurrent first claims on PostgreSQL: one insert wins, retry
            try:
                return self._begin(key, fingerprint)
            except IntegrityError:
                continue
            except SQLAlchemyError as e:
                raise StoreError(f"cannot claim an idempotency key: {e.__class__.__name__}") from e
        raise StoreError("cannot claim an idempotency key: it keeps changing hands")

    def _begin(self, key: str, fingerprint: str) -> Claim:
        now = utcnow()
        with self._writer.begin() as conn:
            row = conn.execute(select(_T).where(_T.c.key == key)).first()
            abandoned = row is not None and (
                row.expires_at < now or (row.state == "running" and row.created_at < now - self.stale))
            if row is None or abandoned:
                if abandoned:
                    conn.execute(delete(_T).where(_T.c.key == key))
                conn.execute(insert(_T).values(key=key, fingerprint=fingerprint, state="running",
                                               response=None, trace_ids=None, created_at=now,
                                               expires_at=now + self.ttl))
                return Claim("new", key)
            if row.fingerprint != fingerprint:
                return Claim("mismatch", key)
            if row.state == "done":
                return Claim("done", key, row.response, list(row.trace_ids or []))
            return Claim("running", key)

    def complete(self, key: str, body: dict[str, Any], trace_ids: list[str]) -> None:
        """Keep the finished response of the request that claimed `key`."""
        try:
            with self._writer.begin() as conn:
                conn.execute(update(_T).where(_T.c.key == key).values(
                    state="done", response=json_safe(body), trace_ids=list(trace_ids),
                    expires_at=utcnow() + self.ttl))
        except SQLAlchemyError as e:
            raise StoreError(f"cannot record an idempotent result: {e.__class__.__name__}") from e

    def release(self, key: str) -> None:
        """Drop an unfinished claim (its request failed or was cancelled)."""
        try:
            with self._writer.begin() as conn:
                conn.execute(delete(_T).where(_T.c.key == key, _T.c.state == "running"))
        except SQLAlchemyError:
            pass  # an unreleased claim goes stale and is taken over later

    def _maybe_purge(self) -> None:
        with self._lock:
            if time.monotonic() - self._last_purge < _PURGE_EVERY_S:
                return
            self._last_purge = time.monotonic()
        try:
            with self._writer.begin() as conn:
                conn.execute(delete(_T).where(_T.c.expires_at < utcnow()))
        except SQLAlchemyError:
            pass  # purging is housekeeping; the next one will try again
