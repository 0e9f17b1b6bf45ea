"""Tables of the LangGraph checkpointer that lives in the trace store's database.

Slow thinking checkpoints its graph state beside the traces (thread id = trace id), so an
interrupted solve resumes from the same database its trace is in. Three tables, after the
layout LangGraph's own SQL savers use:

- `graph_checkpoints`: one row per checkpoint (serialized checkpoint without its channel
  values, JSON metadata, parent id);
- `graph_checkpoint_blobs`: channel values, one row per channel and version, so a value that
  did not change between checkpoints is stored once;
- `graph_checkpoint_writes`: the writes of tasks that finished inside a superstep (what lets a
  resumed run skip the nodes that already ran).

Thread ids are free strings, not foreign keys to `traces`: the checkpointer is a general
LangGraph saver. A write can be guarded: a `Guard` runs first inside the write's transaction
and raises to refuse it (the runtime passes the trace store's `fence`, so only the process that
runs a trace writes its checkpoints). Below the tables, their queries, each in its own
transaction; they take and give serialized values (type tag and bytes).
`agentrt.workflows.checkpoint` serializes and implements LangGraph's saver on them; this module
knows nothing about LangGraph or what the values hold. Writes are not made durable on
PostgreSQL before their commit returns: a checkpoint is a resume aid, so a killed solve loses
nothing (the server has the WAL); only a database crash can lose the newest checkpoints, and
then finished nodes run again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Integer, LargeBinary, Row, String, delete, select, tuple_
from sqlalchemy.orm import Mapped, Session, mapped_column

from agentrt.store.engine import transaction, upsert
from agentrt.store.models import Base, JSONType, UTCDateTime

__all__ = ["GraphCheckpoint", "GraphCheckpointBlob", "GraphCheckpointWrite", "SavedCheckpoint",
           "Guard", "load_checkpoint", "find_checkpoints", "save_checkpoint", "save_writes",
           "delete_thread", "finished_tasks", "count_rows"]


class GraphCheckpoint(Base):
    """One checkpoint of one graph thread and namespace."""

    __tablename__ = "graph_checkpoints"

    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(255), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    parent_checkpoint_id: Mapped[str | None] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class GraphCheckpointBlob(Base):
    """The value of one channel at one version (type "empty" and no data: no value)."""

    __tablename__ = "graph_checkpoint_blobs"

    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(255), primary_key=True)
    channel: Mapped[str] = mapped_column(String(255), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(32))
    blob: Mapped[bytes | None] = mapped_column(LargeBinary)


class GraphCheckpointWrite(Base):
    """One write of one task, pending on the checkpoint it was made from."""

    __tablename__ = "graph_checkpoint_writes"

    thread_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    checkpoint_ns: Mapped[str] = mapped_column(String(255), primary_key=True)
    checkpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    channel: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32))
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    task_path: Mapped[str] = mapped_column(String(1024), default="")


_CKPT = GraphCheckpoint.__table__
_BLOB = GraphCheckpointBlob.__table__
_WRITE = GraphCheckpointWrite.__table__
_WRITE_KEY = ["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"]
#: From a checkpoint row to the (channel, version) pairs whose blobs it needs.
Versions = Callable[[Row[Any]], Sequence[tuple[str, str]]]
#: Run first inside a write's transaction; raises to refuse the write.
Guard = Callable[[Session], None]


@dataclass
class SavedCheckpoint:
    """A `graph_checkpoints` row with the blobs of its channel versions and its pending writes."""

    row: Row[Any]
    blobs: list[Row[Any]] = field(default_factory=list)
    writes: list[Row[Any]] = field(default_factory=list)


def _saved(s: Session, row: Row[Any], versions: Sequence[tuple[str, str]]) -> SavedCheckpoint:
    saved = SavedCheckpoint(row)
    if versions:
        saved.blobs = list(s.execute(select(_BLOB).where(
            _BLOB.c.thread_id == row.thread_id, _BLOB.c.checkpoint_ns == row.checkpoint_ns,
            tuple_(_BLOB.c.channel, _BLOB.c.version).in_(list(versions)))))
    saved.writes = list(s.execute(select(_WRITE).where(
        _WRITE.c.thread_id == row.thread_id, _WRITE.c.checkpoint_ns == row.checkpoint_ns,
        _WRITE.c.checkpoint_id == row.checkpoint_id)))
    return saved


def load_checkpoint(engine: Engine, thread_id: str, ns: str, checkpoint_id: str | None,
                    versions: Versions) -> SavedCheckpoint | None:
    """One checkpoint (`checkpoint_id`, else the thread's newest) with its blobs and writes.

    Args:
        versions: a function from the checkpoint row to the (channel, version) pairs whose
            blobs to load (they are recorded inside the serialized checkpoint).
    """
    query = select(_CKPT).where(_CKPT.c.thread_id == thread_id, _CKPT.c.checkpoint_ns == ns)
    if checkpoint_id:
        query = query.where(_CKPT.c.checkpoint_id == checkpoint_id)
    else:
        query = query.order_by(_CKPT.c.checkpoint_id.desc()).limit(1)
    with transaction(engine, "read checkpoints") as s:
        row = s.execute(query).first()
        return _saved(s, row, versions(row)) if row is not None else None


def find_checkpoints(engine: Engine, versions: Versions, *, thread_id: str | None = None,
                     ns: str | None = None, checkpoint_id: str | None = None,
                     before: str | None = None, meta: dict[str, Any] | None = None,
                     limit: int | None = None) -> list[SavedCheckpoint]:
    """Checkpoints matching every given filter (`meta`: metadata values), newest first per
    thread and namespace, each with its blobs (`versions` as in `load_checkpoint`) and writes."""
    query = select(_CKPT)
    if thread_id is not None:
        query = query.where(_CKPT.c.thread_id == thread_id)
    if ns is not None:
        query = query.where(_CKPT.c.checkpoint_ns == ns)
    if checkpoint_id:
        query = query.where(_CKPT.c.checkpoint_id == checkpoint_id)
    if before:
        query = query.where(_CKPT.c.checkpoint_id < before)
    query = query.order_by(_CKPT.c.thread_id, _CKPT.c.checkpoint_ns,
                           _CKPT.c.checkpoint_id.desc())
    if limit is not None and not meta:
        query = query.limit(max(limit, 0))
    out: list[SavedCheckpoint] = []
    with transaction(engine, "list checkpoints") as s:
        for row in s.execute(query):
            if meta and not all(row.meta.get(k) == v for k, v in meta.items()):
                continue
            if limit is not None and len(out) >= limit:
                break
            out.append(_saved(s, row, versions(row)))
    return out


def save_checkpoint(engine: Engine, row: dict[str, Any], blobs: list[dict[str, Any]], *,
                    guard: Guard | None = None) -> None:
    """Store a checkpoint row (replacing one with its id) and new blobs (kept if present)."""
    dialect = engine.dialect.name
    with transaction(engine, "store checkpoints", write=True, durable=False) as s:
        _check(guard, s)
        if blobs:
            s.execute(upsert(dialect, _BLOB, ["thread_id", "checkpoint_ns", "channel",
                                              "version"]), blobs)
        s.execute(upsert(dialect, _CKPT, ["thread_id", "checkpoint_ns", "checkpoint_id"],
                         update=["type", "checkpoint", "meta"]), row)


def save_writes(engine: Engine, rows: list[dict[str, Any]], *, replace: bool,
                guard: Guard | None = None) -> None:
    """Store the writes of one task; `replace` overwrites writes already stored at their index."""
    update = ["channel", "type", "blob", "task_path"] if replace else []
    with transaction(engine, "store writes checkpoints", write=True, durable=False) as s:
        _check(guard, s)
        s.execute(upsert(engine.dialect.name, _WRITE, _WRITE_KEY, update=update), rows)


def delete_thread(engine: Engine, thread_id: str, *, guard: Guard | None = None) -> None:
    """Delete every checkpoint, blob and write of a thread."""
    with transaction(engine, "delete checkpoints", write=True, durable=False) as s:
        _check(guard, s)
        for table in (_WRITE, _BLOB, _CKPT):
            s.execute(delete(table).where(table.c.thread_id == thread_id))


def _check(guard: Guard | None, session: Session) -> None:
    if guard is not None:
        guard(session)


def finished_tasks(engine: Engine, thread_id: str, control: Sequence[str]) -> set[tuple[str, str]]:
    """(namespace, task id) of every task of a thread with a write on a channel not in `control`."""
    query = (select(_WRITE.c.checkpoint_ns, _WRITE.c.task_id).distinct()
             .where(_WRITE.c.thread_id == thread_id, _WRITE.c.channel.not_in(list(control))))
    with transaction(engine, "read finished tasks of checkpoints") as s:
        return {(ns, task_id) for ns, task_id in s.execute(query)}


def count_rows(engine: Engine, thread_id: str) -> dict[str, int]:
    """Rows per table for a thread."""
    out = {}
    with transaction(engine, "count checkpoints") as s:
        for name, table in (("checkpoints", _CKPT), ("blobs", _BLOB), ("writes", _WRITE)):
            out[name] = len(s.execute(
                select(table.c.thread_id).where(table.c.thread_id == thread_id)).all())
    return out
