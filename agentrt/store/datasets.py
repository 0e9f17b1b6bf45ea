"""Tables of built training datasets: one row per dataset, and the traces each was built from.

`datasets` records a dataset that was written to disk in full: its unique name, kind ("sft",
"tool", "dpo", "router"), the directory it lives in, the content hash of its rows, the row
count, the filters it was built with and a free-form `meta` (composition, token counts, mixing).
`dataset_traces` links a dataset to every trace it drew rows from. Trace ids are plain strings,
not foreign keys: a dataset's lineage outlives any clean-up of the traces themselves.

This module only declares the tables; `agentrt.data_synth.compile.registry` reads and writes them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentrt.store.models import Base, JSONType, UTCDateTime

__all__ = ["Dataset", "DatasetTrace"]


class Dataset(Base):
    """A dataset built from stored traces and saved to disk."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int] = mapped_column(BigInteger)
    filters: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    meta: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_datasets_kind_created_at", "kind", "created_at"),
        Index("ix_datasets_content_hash", "content_hash"),
    )


class DatasetTrace(Base):
    """One trace a dataset drew rows from."""

    __tablename__ = "dataset_traces"

    dataset_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("datasets.id", ondelete="CASCADE"), primary_key=True
    )
    trace_id: Mapped[str] = mapped_column(String(32), primary_key=True)

    __table_args__ = (Index("ix_dataset_traces_trace_id", "trace_id"),)
