"""Database URLs and engines: SQLite tuned for many writers, PostgreSQL through psycopg 3.

SQLite connections get WAL journaling, a busy timeout, foreign keys and `synchronous=NORMAL`.
The sqlite3 driver's own transaction handling is switched off and SQLAlchemy emits BEGIN
itself (the recipe from SQLAlchemy's SQLite documentation): `BEGIN IMMEDIATE` on the engine
returned by `writer()`, so a writer takes the write lock up front and waits on the busy timeout
instead of failing half-way with "database is locked"; a plain deferred `BEGIN` for reads, which
in WAL mode see a consistent snapshot and block no one. `sqlite://` (in memory) shares one
connection, so callers must serialize access to it (the store does).

This module knows nothing about tables, migrations or records.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from agentrt.core.errors import StoreError
from agentrt.store.jsonsafe import dumps

__all__ = [
    "SUPPORTED_DIALECTS",
    "parse_url",
    "mask_url",
    "sqlite_path",
    "make_engine",
    "writer",
]

SUPPORTED_DIALECTS = ("sqlite", "postgresql")
_WRITE_OPTION = "agentrt_write"


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
    return create_engine(url, **kwargs)


def writer(engine: Engine) -> Engine:
    """A view of `engine` whose transactions are write transactions (`BEGIN IMMEDIATE` on SQLite).

    It shares the engine's connection pool; on PostgreSQL it behaves exactly like `engine`.
    """
    return engine.execution_options(**{_WRITE_OPTION: True})


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
