"""The trace store: every solve as a trace with its steps, in SQLite or PostgreSQL.

    >>> from agentrt.store import TraceStore, StepRecord
    >>> store = TraceStore("sqlite:///traces.db")  # doctest: +SKIP

`TraceStore` writes and reads traces; `StepRecord` and `TraceRecord` are the typed records it
takes and gives. `sqlite:///path.db` (the default, under the agentrt home) runs in WAL mode with
`BEGIN IMMEDIATE` writes, so threads and processes on one machine can share a file;
`postgresql://...` (psycopg 3) serves many workers and machines. JSON columns (`meta`, step
`inputs` and `outputs`) take any value: what JSON cannot hold is converted, never rejected
(`str()` as with `json.dumps(default=str)`, NaN and infinities as strings, NUL characters as
U+FFFD; see `agentrt.store.jsonsafe`), so a step is never lost to one odd value. PostgreSQL
stores JSON as JSONB, which does not keep the order of object keys.

Layout: `records.py` (pydantic records, `ModelVersion` included), `models.py` (ORM tables),
`engine.py` (URLs, SQLite pragmas, and the one `transaction()`, `store_error()` and `upsert()`
every table's code uses), `migrate.py` (Alembic, applied on open), `rows.py` (mapping and
queries), `lease.py` (who runs a running trace, heartbeats), `store.py` (`TraceStore`),
`checkpoints.py`, `datasets.py`, `idempotency.py`, `model_versions.py` (the other tables, each
with its queries: the packages above call these and never open sessions themselves),
`migrations/` (Alembic scripts, shipped in the package).

Adding a table (datasets, model versions, eval runs, checkpoints, ...):

1. Declare it as an ORM class on `agentrt.store.models.Base`, in `models.py` or in a new module
   under `agentrt/store/`; a new module goes into `agentrt.store.migrate.MODEL_MODULES`. Keep
   table schemas, and the queries of the table, in the store package so that lower layers never
   import higher ones; run them in `agentrt.store.engine.transaction`.
2. Write `migrations/versions/000N_<what>.py` with `revision = "000N"` and `down_revision` the
   previous number. Let Alembic draft it from the models against a database at the current head:

       from alembic import command
       from agentrt.store.migrate import alembic_config
       command.revision(alembic_config("sqlite:///draft.db"), message="datasets",
                        autogenerate=True, rev_id="0002")

   (open a `TraceStore` on `draft.db` first so it is at head). Review the draft: revision
   scripts keep plain SQLAlchemy types and never import the models, so they stay frozen.
3. Run `tests/store/`: it migrates fresh SQLite and PostgreSQL databases to head and fails if
   the result differs from the models in any way.

Every store opened afterwards migrates its database on open; concurrent openers are safe.
This package knows nothing about solving, workflows or training; it only keeps their records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentrt.store.records import ModelVersion, StepRecord, TraceRecord
from agentrt.store.store import TraceStore

if TYPE_CHECKING:
    from agentrt.store.store import TraceStore

__all__ = ["TraceStore", "TraceRecord", "StepRecord", "ModelVersion"]


def __getattr__(name: str) -> Any:
    # SQLAlchemy and Alembic load only when a store is needed, not when records are built.
    if name == "TraceStore":
        return TraceStore
    raise AttributeError(f"module 'agentrt.store' has no attribute {name!r}")
