"""The dataset registry in the trace store's database: register, list and look up datasets.

A dataset is registered in one transaction with the ids of the traces it was built from, and
only after its directory is complete (see `agentrt.data_synth.compile.writer`). Names are unique; a
second dataset under a taken name is refused. Tables and their queries: `agentrt.store.datasets`
(this module turns its rows into `DatasetRecord`s). This module knows nothing about how rows are
built.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from agentrt.core.errors import NotFoundError
from agentrt.data_synth.compile.spec import DatasetRecord
from agentrt.store.datasets import Dataset, add_dataset, dataset_with_traces, find_datasets

__all__ = ["register_dataset", "list_datasets", "get_dataset"]


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
    row, unique = add_dataset(store.engine, name=name, kind=kind, path=path,
                              content_hash=content_hash, rows=rows, filters=filters, meta=meta,
                              trace_ids=trace_ids, created_at=created_at)
    return _record(row, unique)


def list_datasets(store: Any, *, kind: str | None = None, limit: int = 100) -> list[DatasetRecord]:
    """Registered datasets, newest first (without their trace ids)."""
    return [_record(r) for r in find_datasets(store.engine, kind=kind, limit=limit)]


def get_dataset(store: Any, name_or_id: str) -> DatasetRecord:
    """One dataset by name or id, with the ids of its source traces.

    Raises:
        NotFoundError: no dataset has this name or id.
    """
    found = dataset_with_traces(store.engine, name_or_id)
    if found is None:
        raise NotFoundError(f"no dataset named {name_or_id!r}", id=name_or_id)
    return _record(*found)
