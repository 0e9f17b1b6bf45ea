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
LangGraph saver. This module only declares the tables; `agentrt.workflows.checkpoint` reads and writes
them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from agentrt.store.models import Base, JSONType, UTCDateTime

__all__ = ["GraphCheckpoint", "GraphCheckpointBlob", "GraphCheckpointWrite"]


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
