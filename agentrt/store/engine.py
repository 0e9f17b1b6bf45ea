"""Database URLs and engines: SQLite tuned for many writers, PostgreSQL through psycopg 3.

SQLite connections get WAL journaling, a busy timeout, foreign keys and `synchronous=NORMAL`.
PostgreSQL connections get a connect timeout and TCP keepalives (`PG_CONNECT_DEFAULTS`), so a
server that stops answering, or a network that drops the connection, ends in an error instead
of a hang; an option given in the URL's query (`?connect_timeout=30`, `?keepalives=0`, any
libpq connection parameter) or `PGCONNECT_TIMEOUT` in the environment replaces its default.
The sqlite3 driver's own transaction handling is switched off and SQLAlchemy emits BEGIN
itself (the recipe from SQLAlchemy's SQLite documentation): `BEGIN IMMEDIATE` on the engine
returned by `writer()`, so a writer takes the write lock up front and waits on the busy timeout
instead of failing half-way with "database is locked"; a plain deferred `BEGIN` for reads, which
in WAL mode see a consistent snapshot and block no one. `sqlite://` (in memory) shares one
connection, so every transaction on it is serialized (one lock per engine).

`transaction()` is the one way code opens a session on the store's database, here and in the
packages above (through the store's query functions); `store_error()` is the one translation
of SQLAlchemy errors into agentrt errors; `upsert()` is the one dialect-aware
`INSERT ... ON CONFLICT`.

This module knows nothing about tables, migrations or records.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.dml import Insert

from agentrt.core.errors import AgentrtError, StoreError
from agentrt.store.jsonsafe import dumps

__all__ = [
    "SUPPORTED_DIALECTS",
    "parse_url",
    "mask_url",
    "sqlite_path",
    "make_engine",
    "PG_CONNECT_DEFAULTS",
    "pg_connect_args",
    "writer",
    "transaction",
    "store_error",
    "reason",
    "upsert",
]

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
_WRITE_OPTION = "agentrt_write"

#: libpq connection parameters every PostgreSQL connection gets unless the URL (or, for the
#: timeout, `PGCONNECT_TIMEOUT`) sets them: give up connecting after 10 s; probe a quiet
#: connection after 30 s idle, every 10 s, and drop it after 3 unanswered probes; drop a
#: connection whose sent data stays unacknowledged for 60 s.
PG_CONNECT_DEFAULTS: dict[str, int] = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
_PG_ENV = {"connect_timeout": "PGCONNECT_TIMEOUT"}


def parse_url(url: str) -> URL:
    """Parse and normalize a database URL.

    `postgresql://` and `postgres://` select psycopg 3 (`postgresql+psycopg://`), the driver
    the project ships with.

    Raises:
        StoreError: the URL cannot be parsed or names an unsupported database.
    """
    if not isinstance(url, str) or not url.strip():
        raise StoreError("trace store URL must be a non-empty string")
    text = url.strip()
    if text.startswith("postgres://"):
        text = "postgresql://" + text[len("postgres://") :]
    try:
        parsed = make_url(text)
    except (ArgumentError, ValueError) as e:
        raise StoreError(f"invalid trace store URL {_mask_text(text)!r}: {e}") from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_DIALECTS:
        raise StoreError(
            f"unsupported trace store database {backend!r} in {mask_url(parsed)}: "
            f"use one of {', '.join(SUPPORTED_DIALECTS)}"
        )
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def mask_url(url: URL | str) -> str:
    """The URL as text with any password replaced by `***`."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return _mask_text(url)
    return url.render_as_string(hide_password=True)


def _mask_text(text: str) -> str:
    # Unparseable URL: hide whatever sits between "//user:" and "@".
    head, sep, rest = text.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{head}://{user}:***@{host}" if ":" in creds else text
    return text


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for an in-memory database."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or url.query.get("mode") == "memory":
        return None
    return Path(db)


def make_engine(url: URL, *, busy_timeout_s: float = 30.0, echo: bool = False) -> Engine:
    """Create the engine for `url` (already normalized by `parse_url`).

    Args:
        url: a SQLite or PostgreSQL URL.
        busy_timeout_s: how long a SQLite writer waits for the write lock before failing.
        echo: log every statement (debugging).

    Returns:
        The engine; use `writer(engine)` for write transactions.
    """
    kwargs: dict[str, Any] = {"echo": echo, "json_serializer": dumps}
    if url.get_backend_name() == "sqlite":
        kwargs["connect_args"] = {"timeout": busy_timeout_s, "check_same_thread": False}
        if sqlite_path(url) is None:
            kwargs["poolclass"] = StaticPool
        engine = create_engine(url, **kwargs)
        _install_sqlite_hooks(engine, busy_timeout_s, wal=sqlite_path(url) is not None)
        return engine
    kwargs["pool_pre_ping"] = True  # a server restart must not break a long-lived store
    kwargs["connect_args"] = pg_connect_args(url)
    return create_engine(url, **kwargs)


def pg_connect_args(url: URL) -> dict[str, int]:
    """The `PG_CONNECT_DEFAULTS` that neither the URL's query nor the environment sets."""
    out = {}
    for key, value in PG_CONNECT_DEFAULTS.items():
        env = _PG_ENV.get(key)
        if key not in url.query and not (env and os.environ.get(env)):
            out[key] = value
    return out


def writer(engine: Engine) -> Engine:
    """A view of `engine` whose transactions are write transactions (`BEGIN IMMEDIATE` on SQLite).

    It shares the engine's connection pool; on PostgreSQL it behaves exactly like `engine`.
    """
    return engine.execution_options(**{_WRITE_OPTION: True})


class _EngineState:
    """What every transaction on one engine shares: its write view and, in memory, a lock."""

    def __init__(self, engine: Engine) -> None:
        self.writer = writer(engine)
        in_memory = engine.dialect.name == "sqlite" and sqlite_path(engine.url) is None
        self.serial: AbstractContextManager[Any] = (
            threading.RLock() if in_memory else nullcontext())


_STATES: weakref.WeakKeyDictionary[Engine, _EngineState] = weakref.WeakKeyDictionary()
_STATES_LOCK = threading.Lock()


def _state(engine: Engine) -> _EngineState:
    with _STATES_LOCK:
        state = _STATES.get(engine)
        if state is None:
            state = _STATES[engine] = _EngineState(engine)
        return state


@contextmanager
def transaction(engine: Engine, action: str, *, write: bool = False, where: str | None = None,
                conflict: type[AgentrtError] | None = StoreError,
                durable: bool = True) -> Iterator[Session]:
    """A session in one transaction, committed when the block ends, rolled back on an error.

    Args:
        engine: an engine made by `make_engine` (the store's `engine`).
        action: what the transaction does, for error messages ("cannot <action>: ...").
        write: a write transaction (`BEGIN IMMEDIATE` on SQLite).
        where: where it runs, for error messages (" in <where>"), e.g. the masked URL.
        conflict: the error an integrity violation (unique or foreign key) becomes; None lets
            `sqlalchemy.exc.IntegrityError` through, for store code that retries on it.
        durable: False lets a PostgreSQL write commit without waiting for the disk flush.

    Raises:
        StoreError: the database failed (see `store_error`); agentrt errors raised inside the
            block pass through unchanged.

    Example:
        >>> with transaction(store.engine, "count traces") as s:  # doctest: +SKIP
        ...     n = s.scalar(select(func.count()).select_from(Trace))
    """
    state = _state(engine)
    try:
        with state.serial, Session(state.writer if write else engine,
                                   expire_on_commit=False) as s, s.begin():
            if write and not durable and engine.dialect.name == "postgresql":
                s.execute(text("SET LOCAL synchronous_commit = off"))
            yield s
    except AgentrtError:
        raise
    except IntegrityError as e:
        if conflict is None:
            raise
        raise store_error(e, action, where=where, kind=conflict) from e
    except SQLAlchemyError as e:
        raise store_error(e, action, where=where) from e


def store_error(error: BaseException, action: str, *, where: str | None = None,
                kind: type[AgentrtError] = StoreError) -> AgentrtError:
    """The agentrt error for a database error: `cannot <action>[ in <where>]: <reason>`."""
    place = f" in {where}" if where else ""
    return kind(f"cannot {action}{place}: {reason(error)}")


def reason(error: BaseException) -> str:
    """A one-line reason: the driver's message without SQL, parameters or help links."""
    inner = getattr(error, "orig", None) or error
    lines = [ln.strip() for ln in str(inner).splitlines() if ln.strip()]
    return lines[0] if lines else type(inner).__name__


def upsert(dialect: str, table: Table, keys: Sequence[str],
           update: Sequence[str] = ()) -> Insert:
    """`INSERT ... ON CONFLICT (keys)` for SQLite or PostgreSQL.

    Args:
        dialect: "sqlite" or "postgresql" (`engine.dialect.name`).
        table: the table to insert into; execute the statement with one dict or a list of them.
        keys: the columns of the unique key that may conflict.
        update: columns to overwrite with the new row's values on a conflict; none keeps the
            stored row (`DO NOTHING`).
    """
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: stmt.excluded[c] for c in update})


def _install_sqlite_hooks(engine: Engine, busy_timeout_s: float, *, wal: bool) -> None:
    busy_ms = int(busy_timeout_s * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN (below), not the driver's legacy transaction control.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA foreign_keys = ON")
            if wal:
                mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() != "wal":
                    cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get(_WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
