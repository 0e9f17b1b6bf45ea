"""Tables of built training datasets: one row per dataset, and the traces each was built from.

`datasets` records a dataset that was written to disk in full: its unique name, kind ("sft",
"tool", "dpo", "router"), the directory it lives in, the content hash of its rows, the row
count, the filters it was built with and a free-form `meta` (composition, token counts, mixing).
`dataset_traces` links a dataset to every trace it drew rows from. Trace ids are plain strings,
not foreign keys: a dataset's lineage outlives any clean-up of the traces themselves.

Below the tables, their queries, each in its own transaction; they return detached rows, which
`agentrt.data_synth.compile.registry` turns into its records. This module knows nothing about how
a dataset's rows are built.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Engine, ForeignKey, Index, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from agentrt.core.errors import InvalidInputError
from agentrt.store.engine import mask_url, transaction
from agentrt.store.jsonsafe import json_safe
from agentrt.store.models import Base, JSONType, UTCDateTime
from agentrt.store.records import utcnow

__all__ = ["Dataset", "DatasetTrace", "add_dataset", "find_datasets", "dataset_with_traces"]


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


def add_dataset(engine: Engine, *, name: str, kind: str, path: str, content_hash: str,
                rows: int, filters: dict[str, Any], meta: dict[str, Any], trace_ids: list[str],
                created_at: datetime | None = None) -> tuple[Dataset, list[str]]:
    """Insert a dataset and its source traces in one transaction.

    Returns:
        The row and its sorted, distinct trace ids.

    Raises:
        InvalidInputError: a dataset with this name exists.
        StoreError: the database failed.
    """
    row = Dataset(id=uuid.uuid4().hex, name=name, kind=kind, path=path,
                  content_hash=content_hash, rows=rows, filters=json_safe(filters),
                  meta=json_safe(meta), created_at=created_at or utcnow())
    unique = sorted(set(trace_ids))
    with transaction(engine, f"register dataset {name!r}", write=True,
                     where=mask_url(engine.url), conflict=InvalidInputError) as s:
        if s.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
            raise InvalidInputError(f"a dataset named {name!r} is registered already")
        s.add(row)
        s.flush()
        s.add_all(DatasetTrace(dataset_id=row.id, trace_id=t) for t in unique)
    return row, unique


def find_datasets(engine: Engine, *, kind: str | None = None, limit: int = 100) -> list[Dataset]:
    """Datasets (of one kind, if given), newest first."""
    q = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id).limit(limit)
    if kind is not None:
        q = q.where(Dataset.kind == kind)
    with transaction(engine, "list datasets", where=mask_url(engine.url)) as s:
        return list(s.scalars(q))


def dataset_with_traces(engine: Engine, name_or_id: str) -> tuple[Dataset, list[str]] | None:
    """The dataset with this name (else this id) and its sorted trace ids; None if none."""
    with transaction(engine, "read a dataset", where=mask_url(engine.url)) as s:
        row = s.scalar(select(Dataset).where(Dataset.name == name_or_id))
        row = row or s.get(Dataset, name_or_id)
        if row is None:
            return None
        ids = list(s.scalars(select(DatasetTrace.trace_id)
                             .where(DatasetTrace.dataset_id == row.id)
                             .order_by(DatasetTrace.trace_id)))
        return row, ids
