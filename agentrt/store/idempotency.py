"""The `idempotency_keys` table: results of API requests sent with an `Idempotency-Key`.

One row per (caller, key): the fingerprint of the request that claimed it, its state
("running" while the first request is served, "done" once its response is kept), the response
body and trace ids to replay, and when the row expires. Rows live in the trace store's database
so that every server worker (and every machine sharing a PostgreSQL store) sees the same claims.
The table is declared here, beside the store's other tables, so lower layers never import the
server, together with its queries (claim, complete, release, purge); what a claim's state means
to a request lives in `agentrt.server.idempotency`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Index, Row, String, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from agentrt.core.errors import StoreError
from agentrt.store.engine import transaction
from agentrt.store.jsonsafe import json_safe
from agentrt.store.models import Base, JSONType, UTCDateTime
from agentrt.store.records import utcnow

__all__ = ["IdempotencyKey", "claim_key", "complete_key", "release_key", "purge_keys"]

_CLAIM_TRIES = 3


class IdempotencyKey(Base):
    """A claimed idempotency key and, once finished, the response to replay."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    trace_ids: Mapped[list[str] | None] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_idempotency_keys_expires_at", "expires_at"),)


_T = IdempotencyKey.__table__


def claim_key(engine: Engine, key: str, fingerprint: str, *, ttl: timedelta,
              stale: timedelta) -> Row[Any] | None:
    """Claim `key` as "running" for `fingerprint` unless a live row holds it.

    A row that expired, or that stayed "running" longer than `stale` (its worker crashed), is
    replaced. Of concurrent first claims exactly one inserts; the others read its row.

    Returns:
        None when this call claimed the key; else the row that holds it.

    Raises:
        StoreError: the database failed, or the key kept changing hands.
    """
    action = "claim an idempotency key"
    for _ in range(_CLAIM_TRIES):
        now = utcnow()
        try:
            with transaction(engine, action, write=True, conflict=None) as s:
                row = s.execute(select(_T).where(_T.c.key == key)).first()
                abandoned = row is not None and (
                    row.expires_at < now or (row.state == "running"
                                             and row.created_at < now - stale))
                if row is not None and not abandoned:
                    return row
                if abandoned:
                    s.execute(delete(_T).where(_T.c.key == key))
                s.execute(insert(_T).values(key=key, fingerprint=fingerprint, state="running",
                                            response=None, trace_ids=None, created_at=now,
                                            expires_at=now + ttl))
                return None
        except IntegrityError:
            continue  # concurrent first claims on PostgreSQL: one insert wins, read it
    raise StoreError(f"cannot {action}: it keeps changing hands")


def complete_key(engine: Engine, key: str, body: dict[str, Any], trace_ids: list[str], *,
                 ttl: timedelta) -> None:
    """Keep the finished response of the request that claimed `key` for `ttl`."""
    with transaction(engine, "record an idempotent result", write=True) as s:
        s.execute(update(_T).where(_T.c.key == key).values(
            state="done", response=json_safe(body), trace_ids=list(trace_ids),
            expires_at=utcnow() + ttl))


def release_key(engine: Engine, key: str) -> None:
    """Drop an unfinished claim of `key`."""
    with transaction(engine, "release an idempotency key", write=True) as s:
        s.execute(delete(_T).where(_T.c.key == key, _T.c.state == "running"))


def purge_keys(engine: Engine) -> None:
    """Delete every expired row."""
    with transaction(engine, "purge idempotency keys", write=True) as s:
        s.execute(delete(_T).where(_T.c.expires_at < utcnow()))
