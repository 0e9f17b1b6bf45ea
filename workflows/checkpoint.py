"""A LangGraph checkpointer in the trace store's own database (SQLite or PostgreSQL).

`SqlCheckpointer` implements langgraph's `BaseCheckpointSaver` on the tables and queries of
`agentrt.store.checkpoints` (created by the store's migrations), through the store's SQLAlchemy
engine. Slow thinking uses the trace id as the thread id, so a solve that was killed resumes
from the database its trace is in, and nodes whose writes were saved do not run again.

Storage follows LangGraph's own SQL savers: a checkpoint row without channel values, one blob
row per channel version (an unchanged value is stored once), and the pending writes of tasks
that finished inside a superstep. Values are serialized with the saver's `serde` (LangGraph's
JSON-plus/msgpack serializer by default, never pickle); metadata is stored as JSON. A value that
cannot be read back (a damaged row, or one written by an incompatible serializer) is a
StoreError naming the thread and checkpoint, never the serializer's own exception.

With a `fence` (the trace store's `TraceStore.fence`), every write and delete first checks,
inside its own transaction, that this process runs the trace the thread belongs to; so a process
that lost its trace to a resumer cannot overwrite or delete the resumer's checkpoints.

Thread-safe: each call runs in its own transaction (`BEGIN IMMEDIATE` for writes on SQLite;
on PostgreSQL writes commit without waiting for the disk flush, see `agentrt.store.checkpoints`).
An in-memory SQLite database is one shared connection, so calls are serialized on it (with the
store's own, by `agentrt.store.engine.transaction`). This module knows nothing about SQL,
traces, workflows or what the graph state means.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
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
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from agentrt.core.errors import StoreError
from agentrt.store import checkpoints as saved
from agentrt.store.records import utcnow

__all__ = ["SqlCheckpointer"]

_MAX_ID = 64
# Writes that say what happened to a task rather than what it produced.
_CONTROL = sorted({*WRITES_IDX_MAP, "__error_source_node__"})
#: (session, thread id, action): refuses a write by raising (see `TraceStore.fence`).
Fence = Callable[[Session, str, str], None]


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
        fence: checks each write and delete inside its transaction (`TraceStore.fence`: only
            the process that runs a trace writes the checkpoints of its thread); none by
            default.

    Example:
        >>> from agentrt.store import TraceStore
        >>> store = TraceStore("sqlite:///traces.db")  # doctest: +SKIP
        >>> graph = builder.compile(checkpointer=SqlCheckpointer(store.engine))  # doctest: +SKIP
        >>> graph.invoke(inputs, {"configurable": {"thread_id": trace_id}})  # doctest: +SKIP
    """

    def __init__(self, engine: Engine, *, serde: SerializerProtocol | None = None,
                 fence: Fence | None = None) -> None:
        super().__init__(serde=serde)
        self.engine = engine
        self.dialect = engine.dialect.name
        self.fence = fence

    def _guard(self, thread_id: str, action: str) -> Callable[[Session], None] | None:
        fence = self.fence
        if fence is None:
            return None
        return lambda session: fence(session, thread_id, action)

    def _loads(self, row: Any, kind: str, data: Any, what: str) -> Any:
        """Deserialize one stored value; a value that cannot be read is a StoreError."""
        try:
            return self.serde.loads_typed((kind, data))
        except Exception as e:  # any decoder failure: the stored bytes are unusable
            raise StoreError(
                f"checkpoint {row.checkpoint_id} of thread {row.thread_id} is unreadable "
                f"({what}: {type(e).__name__}: {e}); the solve cannot continue from it") from e

    # ---------------------------------------------------------------- reading
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint named by `config` (its `checkpoint_id`, else the thread's newest)."""
        thread_id, ns = _keys(config)
        found = saved.load_checkpoint(self.engine, thread_id, ns, get_checkpoint_id(config),
                                      self._versions)
        return self._tuple(found) if found is not None else None

    def list(self, config: RunnableConfig | None, *, filter: dict[str, Any] | None = None,
             before: RunnableConfig | None = None, limit: int | None = None,
             ) -> Iterator[CheckpointTuple]:
        """Checkpoints matching `config`, `filter` (metadata values) and `before`, newest first."""
        where: dict[str, Any] = {}
        if config is not None:
            where["thread_id"], _ = _keys(config)
            where["ns"] = (config.get("configurable") or {}).get("checkpoint_ns")
            where["checkpoint_id"] = get_checkpoint_id(config)
        found = saved.find_checkpoints(
            self.engine, self._versions, **where, meta=filter, limit=limit,
            before=get_checkpoint_id(before) if before is not None else None)
        yield from [self._tuple(f) for f in found]

    def _versions(self, row: Any) -> list[tuple[str, str]]:
        checkpoint = self._loads(row, row.type, row.checkpoint, "the checkpoint")
        versions = checkpoint.get("channel_versions", {}) if isinstance(checkpoint, dict) else None
        if not isinstance(versions, dict):
            raise StoreError(f"checkpoint {row.checkpoint_id} of thread {row.thread_id} is "
                             f"unreadable (no channel versions); the solve cannot continue "
                             f"from it")
        return [(ch, str(v)) for ch, v in versions.items()]

    def _tuple(self, found: saved.SavedCheckpoint) -> CheckpointTuple:
        row = found.row
        checkpoint: Checkpoint = self._loads(row, row.type, row.checkpoint, "the checkpoint")
        values = {b.channel: self._loads(row, b.type, b.blob, f"channel {b.channel!r}")
                  for b in found.blobs if b.type != "empty"}
        writes = sorted(found.writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))
        parent = (_config(row.thread_id, row.checkpoint_ns, row.parent_checkpoint_id)
                  if row.parent_checkpoint_id else None)
        return CheckpointTuple(
            config=_config(row.thread_id, row.checkpoint_ns, row.checkpoint_id),
            checkpoint={**checkpoint, "channel_values": values},
            metadata=dict(row.meta or {}),
            parent_config=parent,
            pending_writes=[(w.task_id, w.channel,
                             self._loads(row, w.type, w.blob, f"a write to {w.channel!r}"))
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
        saved.save_checkpoint(self.engine, row, blob_rows,
                              guard=self._guard(thread_id, "store checkpoints"))
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
        if rows:
            replace = all(channel in WRITES_IDX_MAP for channel, _ in writes)
            saved.save_writes(self.engine, rows, replace=replace,
                              guard=self._guard(thread_id, "store checkpoint writes"))

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""
        saved.delete_thread(self.engine, thread_id,
                            guard=self._guard(thread_id, "delete checkpoints"))

    def finished_tasks(self, thread_id: str) -> set[tuple[str, str]]:
        """(namespace, task id) of every task of a thread whose result is saved.

        A task finished when it saved a write other than an error, interrupt or resume marker
        (LangGraph's own reading of pending writes); a resumed run does not run it again.
        """
        return saved.finished_tasks(self.engine, thread_id, _CONTROL)

    def count(self, thread_id: str) -> dict[str, int]:
        """Rows per table for a thread (for tests, benchmarks and diagnostics)."""
        return saved.count_rows(self.engine, thread_id)

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
