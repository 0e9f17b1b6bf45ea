"""Idempotency keys: a retried request gets the first one's result instead of running twice.

Claims live in the trace store's database (table `idempotency_keys`, declared in
`agentrt.store.idempotency`), so all workers and machines sharing the store agree. `begin`
claims a key for a request fingerprint or reports what is there: a finished result to replay, a
request still running (the caller waits), or a different request under the same key (a client
bug: 422). A claim whose request failed or was cancelled is released, so a retry runs afresh;
one left "running" by a crashed worker counts as abandoned after `stale_s`. Finished results are
kept for `ttl_s`, and expired rows are purged now and then.

The rows are read and written through the store's queries (`agentrt.store.idempotency`); this
module decides what a claim means. It knows nothing about HTTP or what the body holds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agentrt.core.errors import StoreError
from agentrt.store.idempotency import claim_key, complete_key, purge_keys, release_key

__all__ = ["Claim", "IdempotencyStore"]

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
        self.ttl = timedelta(seconds=ttl_s)
        self.stale = timedelta(seconds=stale_s)
        self._last_purge = 0.0
        self._lock = threading.Lock()

    def begin(self, key: str, fingerprint: str) -> Claim:
        """Claim `key` for the request with `fingerprint`, or report who holds it.

        Raises:
            StoreError: the database failed.
        """
        self._maybe_purge()
        row = claim_key(self.engine, key, fingerprint, ttl=self.ttl, stale=self.stale)
        if row is None:
            return Claim("new", key)
        if row.fingerprint != fingerprint:
            return Claim("mismatch", key)
        if row.state == "done":
            return Claim("done", key, row.response, list(row.trace_ids or []))
        return Claim("running", key)

    def complete(self, key: str, body: dict[str, Any], trace_ids: list[str]) -> None:
        """Keep the finished response of the request that claimed `key`.

        Raises:
            StoreError: the database failed.
        """
        complete_key(self.engine, key, body, trace_ids, ttl=self.ttl)

    def release(self, key: str) -> None:
        """Drop an unfinished claim (its request failed or was cancelled)."""
        try:
            release_key(self.engine, key)
        except StoreError:
            pass  # an unreleased claim goes stale and is taken over later

    def _maybe_purge(self) -> None:
        with self._lock:
            if time.monotonic() - self._last_purge < _PURGE_EVERY_S:
                return
            self._last_purge = time.monotonic()
        try:
            purge_keys(self.engine)
        except StoreError:
            pass  # purging is housekeeping; the next one will try again
