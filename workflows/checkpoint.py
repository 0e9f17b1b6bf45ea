"""A LangGraph checkpointer in the trace store's own database (SQLite or PostgreSQL).

`SqlCheckpointer` implements langgraph's `BaseCheckpointSaver` on the tables declared in
`agentrt.store.checkpoints` (created by the store's migrations), through the store's SQLAlchemy
engine. Slow thinking uses the trace id as the thread id, so a solve that was killed resumes
from the database its trace is in, and nodes whose writes were saved do not run again.

Storage follows LangGraph's own SQL savers: a checkpoint row without channel values, one blob
row per channel version (an unchanged value is stored once), and the pending writes of tasks
that finished inside a superstep. Values are serialized with the saver's `serde` (LangGraph's
JSON-plus/msgpack serializer by default, never pickle); metadata is stored as JSON.

Thread-safe: each call runs in its own transaction (`BEGIN IMMEDIATE` for writes on SQLite;
on PostgreSQL writes commit without waiting for the disk flush, see `_tx`).
An in-memory SQLite database is one shared connection, so calls are serialized on it; do not
share such an engine with another writer in other threads. This module knows nothing about
traces, workflows or what the graph state means.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    SerializerProtocol,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from sqlalchemy import Connection, Engine, delete, select, tuple_
from sqlalchemy.exc import SQLAlchemyError

from agentrt.core.errors import StoreError
from agentrt.store.checkpoints import GraphCheckpoint, GraphCheckpointBlob, GraphCheckpointWrite
from agentrt.store.engine import sqlite_path, writer
from agentrt.store.records import utcnow

__all__ = ["SqlCheckpointer"]

_CKPT = GraphCheckpoint.__table__
_BLOB = GraphCheckpointBlob.__table__
_WRITE = GraphCheckpointWrite.__table__
_MAX_ID = 64
# Writes that say what happened to a task rather than what it produced.
_CONTROL = sorted({*WRITES_IDX_MAP, "__error_source_node__"})


def _insert(dialect: str) -> Any:
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert


def _keys(config: RunnableConfig) -> tuple[str, str]:
    conf = config.get("configurable") or {}
    thread_id = conf.get("thread_id")
    if not isinstance(thread_id, str) or not thread_id:
        raise StoreError("a checkpoint config needs configurable.thread_id (a non-empty string)")
    if len(thread_id) > _MAX_ID:
        raise StoreError(f"checkpoint thread id is longer than {_MAX_ID} characters")
    return thread_id, conf.get("checkpoint_ns", "") or ""


def _config(thread_id: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns,
                             "checkpoint_id": checkpoint_id}}


class SqlCheckpointer(BaseCheckpointSaver[str]):
    """LangGraph checkpoints in the trace store's database.

    Args:
        engine: the trace store's engine (`TraceStore.engine`), migrated to head.
        serde: value serializer; LangGraph's default when omitted.

    Example:
        >>> from agentrt.store import TraceStore
        >>> store = TraceStore("sqlite:///traces.db")  # doctest: +SKIP
        >>> graph = builder.compile(checkpointer=SqlCheckpointer(store.engine))  # doctest: +SKIP
        >>> graph.invoke(inputs, {"configurable": {"thread_id": trace_id}})  # doctest: +SKIP
    """

    def __init__(self, engine: Engine, *, serde: SerializerProtocol | None = None) -> None:
        super().__init__(serde=serde)
        self.engine = engine
        self.dialect = engine.dialect.name
        self._writer = writer(engine)
        in_memory = self.dialect == "sqlite" and sqlite_path(engine.url) is None
        self._serial: AbstractContextManager[Any] = (
            threading.RLock() if in_memory else nullcontext())

    @contextmanager
    def _tx(self, action: str, *, write: bool = False) -> Iterator[Connection]:
        try:
            with self._serial, (self._writer if write else self.engine).begin() as conn:
                if write and self.dialect == "postgresql":
                    # A checkpoint is a resume aid: the commit need not wait for the disk flush.
                    # A killed solve loses nothing (the server has the WAL); only a database
                    # crash can lose the newest checkpoints, and then finished nodes run again.
                    conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
                yield conn
        except SQLAlchemyError as e:
            inner = getattr(e, "orig", None) or e
            first = next((ln for ln in str(inner).splitlines() if ln.strip()), type(inner).__name__)
            raise StoreError(f"cannot {action} checkpoints: {first.strip()}") from e

    # ---------------------------------------------------------------- reading
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by `config` (its `checkpoint_id`, else the thread's newest)."""
        thread_id, ns = _keys(config)
        query = select(_CKPT).where(_CKPT.c.thread_id == thread_id, _CKPT.c.checkpoint_ns == ns)
        if checkpoint_id := get_checkpoint_id(config):
            query = query.where(_CKPT.c.checkpoint_id == checkpoint_id)
        else:
            query = query.order_by(_CKPT.c.checkpoint_id.desc()).limit(1)
        with self._tx("read") as conn:
            row = conn.execute(query).first()
            return self._tuple(conn, row) if row is not None else None

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None,
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching `config`, `filter` (metadata values) and `before`, newest first."""
        query = select(_CKPT)
        if config is not None:
            thread_id, _ = _keys(config)
            query = query.where(_CKPT.c.thread_id == thread_id)
            ns = (config.get("configurable") or {}).get("checkpoint_ns")
            if ns is not None:
                query = query.where(_CKPT.c.checkpoint_ns == ns)
            if checkpoint_id := get_checkpoint_id(config):
                query = query.where(_CKPT.c.checkpoint_id == checkpoint_id)
        if before is not None and (before_id := get_checkpoint_id(before)):
            query = query.where(_CKPT.c.checkpoint_id < before_id)
        query = query.order_by(_CKPT.c.thread_id, _CKPT.c.checkpoint_ns,
                               _CKPT.c.checkpoint_id.desc())
        if limit is not None and not filter:
            query = query.limit(max(limit, 0))
        out: list[CheckpointTuple] = []
        with self._tx("list") as conn:
            for row in conn.execute(query):
                if filter and not all(row.meta.get(k) == v for k, v in filter.items()):
                    continue
                if limit is not None and len(out) >= limit:
                    break
                out.append(self._tuple(conn, row))
        yield from out

    def _tuple(self, conn: Connection, row: Any) -> CheckpointTuple:
        checkpoint: Checkpoint = self.serde.loads_typed((row.type, row.checkpoint))
        pairs = [(ch, str(v)) for ch, v in checkpoint.get("channel_versions", {}).items()]
        values: dict[str, Any] = {}
        if pairs:
            blobs = conn.execute(select(_BLOB).where(
                _BLOB.c.thread_id == row.thread_id, _BLOB.c.checkpoint_ns == row.checkpoint_ns,
                tuple_(_BLOB.c.channel, _BLOB.c.version).in_(pairs)))
            for b in blobs:
                if b.type != "empty":
                    values[b.channel] = self.serde.loads_typed((b.type, b.blob))
        writes = conn.execute(select(_WRITE).where(
            _WRITE.c.thread_id == row.thread_id, _WRITE.c.checkpoint_ns == row.checkpoint_ns,
            _WRITE.c.checkpoint_id == row.checkpoint_id)).all()
        writes.sort(key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))
        parent = (_config(row.thread_id, row.checkpoint_ns, row.parent_checkpoint_id)
                  if row.parent_checkpoint_id else None)
        return CheckpointTuple(
            config=_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=dict(row.meta or {}),
            parent_config=parent,
            pending_writes=[(w.task_id, w.channel, self.serde.loads_typed((w.type, w.blob)))
                            for w in writes],
        )

    # ---------------------------------------------------------------- writing
    def put(self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions) -> RunnableConfig:
        """Store a checkpoint and the channel values whose version changed."""
        thread_id, ns = _keys(config)
        stripped = dict(checkpoint)
        values = stripped.pop("channel_values", {}) or {}
        blob_rows = []
        for channel, version in new_versions.items():
            kind, data = (self.serde.dumps_typed(values[channel]) if channel in values
                          else ("empty", None))
            blob_rows.append({"thread_id": thread_id, "checkpoint_ns": ns, "channel": channel,
                              "version": str(version), "type": kind, "blob": data})
        kind, data = self.serde.dumps_typed(stripped)
        row = {"thread_id": thread_id, "checkpoint_ns": ns, "checkpoint_id": checkpoint["id"],
               "parent_checkpoint_id": (config.get("configurable") or {}).get("checkpoint_id"),
               "type": kind, "checkpoint": data,
               "meta": get_serializable_checkpoint_metadata(config, metadata),
               "created_at": utcnow()}
        insert = _insert(self.dialect)
        with self._tx("store", write=True) as conn:
            if blob_rows:
                conn.execute(insert(_BLOB).on_conflict_do_nothing(), blob_rows)
            stmt = insert(_CKPT).values(row)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["thread_id", "checkpoint_ns", "checkpoint_id"],
                set_={k: stmt.excluded[k] for k in ("type", "checkpoint", "meta")}))
        return _config(thread_id, ns, checkpoint["id"])

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        """Store the writes of one task (special writes such as errors replace older ones)."""
        thread_id, ns = _keys(config)
        checkpoint_id = (config.get("configurable") or {}).get("checkpoint_id")
        if not checkpoint_id:
            raise StoreError("put_writes needs configurable.checkpoint_id")
        rows = []
        for i, (channel, value) in enumerate(writes):
            kind, data = self.serde.dumps_typed(value)
            rows.append({"thread_id": thread_id, "checkpoint_ns": ns,
                         "checkpoint_id": checkpoint_id, "task_id": task_id,
                         "idx": WRITES_IDX_MAP.get(channel, i), "channel": channel,
                         "type": kind, "blob": data, "task_path": task_path})
        if not rows:
            return
        stmt = _insert(self.dialect)(_WRITE)
        if all(channel in WRITES_IDX_MAP for channel, _ in writes):
            stmt = stmt.on_conflict_do_update(
                index_elements=["thread_id", "checkpoint_ns", "checkpoint_id", "task_id", "idx"],
                set_={k: stmt.excluded[k] for k in ("channel", "type", "blob", "task_path")})
        else:
            stmt = stmt.on_conflict_do_nothing()
        with self._tx("store writes", write=True) as conn:
            conn.execute(stmt, rows)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""
        with self._tx("delete", write=True) as conn:
            for table in (_WRITE, _BLOB, _CKPT):
                conn.execute(delete(table).where(table.c.thread_id == thread_id))

    def finished_tasks(self, thread_id: str) -> set[tuple[str, str]]:
        """(namespace, task id) of every task of a thread whose result is saved.

        A task finished when it saved a write other than an error, interrupt or resume marker
        (LangGraph's own reading of pending writes); a resumed run does not run it again.
        """
        query = (select(_WRITE.c.checkpoint_ns, _WRITE.c.task_id).distinct()
                 .where(_WRITE.c.thread_id == thread_id, _WRITE.c.channel.not_in(_CONTROL)))
        with self._tx("read finished tasks of") as conn:
            return {(ns, task_id) for ns, task_id in conn.execute(query)}

    def count(self, thread_id: str) -> dict[str, int]:
        """Rows per table for a thread (for tests, benchmarks and diagnostics)."""
        out = {}
        with self._tx("count") as conn:
            for name, table in (("checkpoints", _CKPT), ("blobs", _BLOB), ("writes", _WRITE)):
                out[name] = len(conn.execute(
                    select(table.c.thread_id).where(table.c.thread_id == thread_id)).all())
        return out

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Monotonic string versions: a zero-padded counter and a random tiebreak."""
        if current is None:
            n = 0
        elif isinstance(current, int):
            n = current
        else:
            n = int(str(current).split(".")[0])
        return f"{n + 1:032}.{random.random():016}"

    # ---------------------------------------------------------------- async
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def alist(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
                    before: RunnableConfig | None = None, limit: int | None = None,
                    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in items:
            yield item

    async def aput(self, config: RunnableConfig, checkpoint: Checkpoint,
                   metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        return await asyncio.to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                          task_id: str, task_path: str = "") -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)
