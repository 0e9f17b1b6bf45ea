"""Schema migrations: bring a database to the newest packaged Alembic revision, safely, on open.

The Alembic scripts ship inside the package (`agentrt/store/migrations/`), so no `alembic.ini`
is needed: `alembic_config()` builds the configuration in code. `upgrade_to_head` is what the
store calls on open. When several processes open the same fresh database at once, exactly one
of them migrates and the others wait and then find the schema current: a file lock beside the
SQLite file (keyed on its path), a transaction-scoped `pg_advisory_xact_lock` on PostgreSQL.
The whole upgrade runs in one transaction on both databases, so a failed migration leaves the
schema as it was. A database whose schema is current is only read, without any lock, so an
existing SQLite file in a directory this process cannot write can still be opened to read.

This module does not know what the tables are; the revision scripts and the ORM models do.
"""

from __future__ import annotations

import importlib
import zlib
from contextlib import AbstractContextManager, nullcontext
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from filelock import FileLock
from sqlalchemy import Connection, Engine, MetaData, text

from agentrt.core.errors import StoreError
from agentrt.store.engine import sqlite_path, writer
from agentrt.store.models import Base

__all__ = [
    "MIGRATIONS_DIR",
    "MODEL_MODULES",
    "alembic_config",
    "target_metadata",
    "head_revision",
    "current_revision",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: Modules that declare ORM tables on `agentrt.store.models.Base`. A module that adds tables
#: is listed here, so that autogenerate and the schema test see every table.
MODEL_MODULES: tuple[str, ...] = ("agentrt.store.models", "agentrt.store.checkpoints",
                                  "agentrt.store.idempotency", "agentrt.store.datasets",
                                  "agentrt.store.model_versions")

# A fixed 63-bit key for PostgreSQL's advisory lock (advisory locks are per database).
_PG_LOCK_KEY = zlib.crc32(b"agentrt.store.migrate") << 16


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """An Alembic configuration for the packaged migrations, without an ini file.

    Args:
        url: database URL for commands run without a connection (offline SQL, autogenerate).
        connection: an open connection to migrate through; its transaction is used as is.

    Returns:
        The config, usable with any `alembic.command` function.

    Example:
        >>> from alembic import command
        >>> cfg = alembic_config("sqlite:///dev.db")
        >>> command.revision(cfg, message="datasets", autogenerate=True,
        ...                  rev_id="0002")  # doctest: +SKIP
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def target_metadata() -> MetaData:
    """The metadata of every table declared in `MODEL_MODULES`."""
    for name in MODEL_MODULES:
        importlib.import_module(name)

    return Base.metadata


@lru_cache(maxsize=1)
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision shipped with this version of agentrt."""
    head = _scripts().get_current_head()
    if head is None:  # pragma: no cover - the package always ships revision 0001
        raise StoreError("no migrations found in the agentrt package")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at, or None for a database never migrated."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade_to_head(engine: Engine, lock_timeout_s: float = 120.0) -> str:
    """Migrate the database behind `engine` to the newest revision, if it is not there yet.

    Safe to call from many processes and threads at once.

    Args:
        engine: an engine made by `agentrt.store.engine.make_engine`.
        lock_timeout_s: how long to wait for another process's migration (SQLite).

    Returns:
        The head revision the database is now at.

    Raises:
        StoreError: the database is at a revision this version does not know.
        sqlalchemy.exc.SQLAlchemyError, filelock.Timeout, OSError: the database failed; the
            store wraps these into StoreError with its URL.
    """
    head = head_revision()
    if _initialized(engine):  # the common case: current already, nothing to lock or write
        with engine.connect() as conn:
            if current_revision(conn) == head:
                return head
    with _process_lock(engine, lock_timeout_s):
        with engine.connect() as conn:
            current = current_revision(conn)
        if current == head:
            return head
        _check_known(current, head)
        with writer(engine).begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            current = current_revision(conn)  # another process may have migrated meanwhile
            if current != head:
                _check_known(current, head)
                command.upgrade(alembic_config(connection=conn), "head")
    return head


def _initialized(engine: Engine) -> bool:
    """Whether the schema may be read before taking the lock: always on PostgreSQL; on SQLite
    once the file has content (the first connection to a new file switches it to WAL, which
    the lock serializes)."""
    path = sqlite_path(engine.url)
    if path is None:
        return engine.dialect.name != "sqlite"
    try:
        return path.stat().st_size > 0
    except OSError:
        return False


def _process_lock(engine: Engine, timeout_s: float) -> AbstractContextManager[object]:
    # SQLite: also covers the first connection, which switches a fresh file to WAL.
    path = sqlite_path(engine.url)
    if path is None:
        return nullcontext()
    return FileLock(f"{path}.migrate.lock", timeout=timeout_s)


def _check_known(current: str | None, head: str) -> None:
    if current is None:
        return
    try:
        known = _scripts().get_revision(current) is not None
    except CommandError:
        known = False
    if not known:
        raise StoreError(
            f"the database schema is at revision {current!r}, which this version of agentrt "
            f"does not know (its newest is {head!r}); upgrade agentrt to open it"
        )
