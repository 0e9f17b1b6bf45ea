"""The dataset registry in the trace store's database: register, list and look up datasets.

A dataset is registered in one transaction with the ids of the traces it was built from, and
only after its directory is complete (see `agentrt.data_synth.compile.writer`). Names are unique; a
second dataset under a taken name is refused. Tables: `agentrt.store.datasets`. This module
knows nothing about how rows are built.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from agentrt.core.errors import InvalidInputError, NotFoundError, StoreError
from agentrt.store.datasets import Dataset, DatasetTrace
from agentrt.store.engine import writer
from agentrt.store.jsonsafe import json_safe
from agentrt.store.records import utcnow
from agentrt.data_synth.compile.spec import DatasetRecord

__all__ = ["register_dataset", "list_datasets", "get_dataset"]


@contextmanager
def _session(store: Any, action: str, *, write: bool = False) -> Iterator[Session]:
    bind = writer(store.engine) if write else store.engine
    try:
        with Session(bind, expire_on_commit=False) as s, s.begin():
            yield s
    except IntegrityError as e:
        raise InvalidInputError(f"cannot {action}: {str(e.orig).splitlines()[0]}") from None
    except SQLAlchemyError as e:
        raise StoreError(f"cannot {action} in {store.url}: {type(e).__name__}") from e


def _record(row: Dataset, trace_ids: list[str] | None = None) -> DatasetRecord:
    return DatasetRecord(id=row.id, name=row.name, kind=row.kind, path=row.path,
                         content_hash=row.content_hash, rows=row.rows, filters=row.filters or {},
                         meta=row.meta or {}, created_at=row.created_at,
                         trace_ids=trace_ids or [])


def register_dataset(store: Any, *, name: str, kind: str, path: str, content_hash: str,
                     rows: int, filters: dict[str, Any], meta: dict[str, Any],
                     trace_ids: list[str], created_at: datetime | None = None) -> DatasetRecord:
    """Register a finished dataset and its source traces in one transaction.

    Raises:
        InvalidInputError: a dataset with this name exists.
        StoreError: the database failed.
    """
    row = Dataset(id=uuid.uuid4().hex, name=name, kind=kind, path=path,
                  content_hash=content_hash, rows=rows, filters=json_safe(filters),
                  meta=json_safe(meta), created_at=created_at or utcnow())
    unique = sorted(set(trace_ids))
    with _session(store, f"register dataset {name!r}", write=True) as s:
        if s.scalar(select(Dataset.id).where(Dataset.name == name)) is not None:
            raise InvalidInputError(f"a dataset named {name!r} is registered already")
        s.add(row)
        s.flush()
        s.add_all(DatasetTrace(dataset_id=row.id, trace_id=t) for t in unique)
    return _record(row, unique)


def list_datasets(store: Any, *, kind: str | None = None, limit: int = 100) -> list[DatasetRecord]:
    """Registered datasets, newest first (without their trace ids)."""
    q = select(Dataset).order_by(Dataset.created_at.desc(), Dataset.id).limit(limit)
    if kind is not None:
        q = q.where(Dataset.kind == kind)
    with _session(store, "list datasets") as s:
        return [_record(r) for r in s.scalars(q)]


def get_dataset(store: Any, name_or_id: str) -> DatasetRecord:
    """One dataset by name or id, with the ids of its source traces.

    Raises:
        NotFoundError: no dataset has this name or id.
    """
    with _session(store, "read a dataset") as s:
        row = s.scalar(select(Dataset).where(Dataset.name == name_or_id))
        row = row or s.get(Dataset, name_or_id)
        if row is None:
            raise NotFoundError(f"no dataset named {name_or_id!r}", id=name_or_id)
        ids = list(s.scalars(select(DatasetTrace.trace_id)
                             .where(DatasetTrace.dataset_id == row.id)
                             .order_by(DatasetTrace.trace_id)))
        return _record(row, ids)
