"""The store's tables as SQLAlchemy 2 ORM classes: traces, their tags and their steps.

These classes are the schema's single source of truth for Python code; the Alembic migrations
in `agentrt/store/migrations/versions/` create the same tables, and a test checks the two agree
on SQLite and PostgreSQL. New tables (datasets, model versions, eval runs, ...) subclass the
same `Base` so that they share its metadata and naming convention. This module knows nothing
about sessions, engines or records; `agentrt.store.store` maps rows to records.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

__all__ = ["Base", "Trace", "TraceTag", "Step", "JSONType", "UTCDateTime", "NAMING_CONVENTION"]

#: Constraint and index names are derived, never left to the database, so later migrations
#: (and SQLite's batch mode, which rebuilds tables) can refer to them by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: JSON on SQLite (stored as text), JSONB on PostgreSQL (indexable, compact).
JSONType = JSON().with_variant(JSONB(), "postgresql")

#: Autoincrementing 64-bit ids on PostgreSQL; SQLite only autoincrements "INTEGER PRIMARY KEY".
BigIntId = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware.

    PostgreSQL keeps the zone (timestamptz); SQLite keeps none, so values are written as naive
    UTC and given back their UTC zone on the way out. Naive inputs are taken to be UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every agentrt table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Trace(Base):
    """One solve: the problem, the outcome and its totals."""

    __tablename__ = "traces"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    problem: Mapped[str] = mapped_column(Text)
    requested_mode: Mapped[str] = mapped_column(String(16))
    mode: Mapped[str | None] = mapped_column(String(16))
    answer: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str | None] = mapped_column(String(32))
    model_id: Mapped[str] = mapped_column(String(255))
    backend: Mapped[str] = mapped_column(String(64))
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    tool_runs: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The lease of a running trace (see agentrt.store.lease): who runs it, last sign of life.
    owner: Mapped[str | None] = mapped_column(String(255))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_traces_created_at", "created_at"),
        Index("ix_traces_status", "status"),
    )


class TraceTag(Base):
    """A key=value label on a trace (eval run, dataset, "synthetic", ...); one value per key."""

    __tablename__ = "trace_tags"

    trace_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("traces.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(String(512))

    __table_args__ = (Index("ix_trace_tags_key_value", "key", "value"),)


class Step(Base):
    """One LLM call, tool run, decision, stage or error inside a trace, in insertion order."""

    __tablename__ = "steps"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    trace_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("traces.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    node: Mapped[str | None] = mapped_column(String(255))
    round: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text)
    template: Mapped[str | None] = mapped_column(String(255))
    template_hash: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The graph task that recorded the step (its checkpoint namespace), and whether a resumed
    # solve ran that task again, so the step no longer counts.
    task: Mapped[str | None] = mapped_column(String(512))
    superseded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (Index("ix_steps_trace_id_id", "trace_id", "id"),)
