"""The `idempotency_keys` table: results of API requests sent with an `Idempotency-Key`.

One row per (caller, key): the fingerprint of the request that claimed it, its state
("running" while the first request is served, "done" once its response is kept), the response
body and trace ids to replay, and when the row expires. Rows live in the trace store's database
so that every server worker (and every machine sharing a PostgreSQL store) sees the same claims.
The table is declared here, beside the store's other tables, so lower layers never import the
server; the claiming logic lives in `agentrt.server.idempotency`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from agentrt.store.models import Base, JSONType, UTCDateTime

__all__ = ["IdempotencyKey"]


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
