"""URLs, SQLite and PostgreSQL connection settings, transaction modes, and open errors."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from agentrt.core.config import Settings
from agentrt.core.errors import StoreError
from agentrt.store import StepRecord, TraceStore
from agentrt.store.engine import PG_CONNECT_DEFAULTS, mask_url, parse_url, sqlite_path, writer


def test_parse_url_selects_psycopg_and_rejects_others():
    assert parse_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert parse_url("sqlite:///x.db").drivername == "sqlite"
    with pytest.raises(StoreError, match="unsupported"):
        parse_url("mysql://u:secret@h/db")
    with pytest.raises(StoreError, match="invalid"):
        parse_url("not a url")
    with pytest.raises(StoreError):
        parse_url("")


def test_passwords_are_masked_everywhere():
    assert mask_url("postgresql+psycopg://u:secret@h/db") == "postgresql+psycopg://u:***@h/db"
    with pytest.raises(StoreError) as err:
        parse_url("mysql://u:secret@h/db")
    assert "secret" not in str(err.value)
    with pytest.raises(StoreError) as err:
        TraceStore("postgresql://u:secret@127.0.0.1:1/nope", busy_timeout_s=1)
    msg = str(err.value)
    assert "secret" not in msg and "***" in msg and "\n" not in msg
    assert msg.startswith("cannot open trace store at postgresql+psycopg://u:***@127.0.0.1:1/nope")


def _pg_parameters(url: str) -> dict[str, str | None]:
    """The libpq parameters a store's connection to `url` was made with."""
    with TraceStore(url) as store:
        conn = store.engine.raw_connection()
        try:
            found = conn.driver_connection.info.get_parameters()
        finally:
            conn.close()
    return {k: found.get(k) for k in PG_CONNECT_DEFAULTS}


def test_postgresql_connections_get_a_connect_timeout_and_keepalives(pg_url, monkeypatch):
    monkeypatch.delenv("PGCONNECT_TIMEOUT", raising=False)
    assert _pg_parameters(pg_url) == {k: str(v) for k, v in PG_CONNECT_DEFAULTS.items()}
    assert PG_CONNECT_DEFAULTS["connect_timeout"] > 0 and PG_CONNECT_DEFAULTS["keepalives"] == 1
    tuned = _pg_parameters(f"{pg_url}?connect_timeout=5&keepalives_idle=120")  # the URL wins
    assert (tuned["connect_timeout"], tuned["keepalives_idle"], tuned["keepalives"]) == (
        "5", "120", "1")
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "7")  # so does libpq's own variable
    assert _pg_parameters(pg_url)["connect_timeout"] == "7"


def test_a_postgresql_server_that_never_answers_is_an_error_not_a_hang():
    with socket.socket() as silent:  # the kernel completes each connection; nobody answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"postgresql://u@127.0.0.1:{silent.getsockname()[1]}/db?connect_timeout=2"
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot open trace store at .*timeout"):
            TraceStore(url)
        waited = time.monotonic() - started
    assert waited < 30, f"gave up after {waited:.1f} s"


def test_sqlite_paths(tmp_path):
    assert sqlite_path(parse_url(f"sqlite:///{tmp_path}/a.db")) == tmp_path / "a.db"
    assert sqlite_path(parse_url("sqlite://")) is None
    assert sqlite_path(parse_url("sqlite:///:memory:")) is None
    with pytest.raises(StoreError, match="no directory"):
        TraceStore(f"sqlite:///{tmp_path}/missing/a.db")


def test_unopenable_sqlite_file_is_a_store_error(tmp_path):
    bad = tmp_path / "not_a_db.db"
    bad.write_bytes(b"this is not a sqlite database" * 100)
    with pytest.raises(StoreError, match="cannot open trace store at sqlite:///"):
        TraceStore(f"sqlite:///{bad}")


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path):
    store = TraceStore(f"sqlite:///{tmp_path / 't.db'}", busy_timeout_s=7)
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 7000
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_sqlite_writes_take_the_write_lock_at_begin(tmp_path):
    db = tmp_path / "t.db"
    store = TraceStore(f"sqlite:///{db}")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    with writer(store.engine).begin() as conn:
        conn.execute(text("SELECT 1"))  # BEGIN IMMEDIATE already holds the write lock
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")  # free again after commit
    other.execute("ROLLBACK")
    with store.engine.begin() as conn:  # reads begin deferred: no lock held
        conn.execute(text("SELECT count(*) FROM traces"))
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    other.close()
    store.close()


def test_cascade_delete_removes_steps_and_tags(store):
    tid = store.start_trace(problem="p", requested_mode="fast", model_id="m", backend="fake", tags={"a": "b"})
    store.add_steps(tid, [StepRecord(kind="llm", name="x"), StepRecord(kind="tool", name="y")])
    with writer(store.engine).begin() as conn:
        conn.execute(text("DELETE FROM traces WHERE id = :id"), {"id": tid})
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM steps")).scalar() == 0
        assert conn.execute(text("SELECT count(*) FROM trace_tags")).scalar() == 0


def test_in_memory_store_is_safe_across_threads():
    store = TraceStore("sqlite://")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(10):
                tid = store.start_trace(problem=f"{n}-{i}", requested_mode="fast", model_id="m", backend="fake")
                store.add_steps(tid, [StepRecord(kind="llm", name="a"), StepRecord(kind="llm", name="b")])
                store.finish_trace(tid, answer="x", status="ok", mode="fast")
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.count_traces(status="ok") == 40
    assert all(len(store.get_trace(t.id).steps) == 2 for t in store.list_traces(limit=40))
    store.close()


def test_from_settings_creates_the_home_only(tmp_path):
    settings = Settings(home=tmp_path / "new" / "home", backend="fake")
    store = TraceStore.from_settings(settings)
    assert (tmp_path / "new" / "home" / "agentrt.db").is_file()
    assert store.dialect == "sqlite" and store.url == settings.db_url
    store.close()
    inside = Settings(home=tmp_path / "h2", backend="fake",
                      database_url=f"sqlite:///{tmp_path / 'h2' / 'traces.db'}")
    TraceStore.from_settings(inside).close()  # a file in the home: the home is created
    assert (tmp_path / "h2" / "traces.db").is_file()


@pytest.mark.parametrize("where", ["nested", "root"])
def test_from_settings_never_creates_other_directories(tmp_path, where):
    import uuid

    top = tmp_path / "missing" if where == "nested" else Path("/") / f"agentrt-{uuid.uuid4().hex}"
    settings = Settings(home=tmp_path / "home", backend="fake",
                        database_url=f"sqlite:///{top / 'sub' / 't.db'}")
    with pytest.raises(StoreError, match="no directory") as err:
        TraceStore.from_settings(settings)
    assert str(top / "sub") in str(err.value) and "create it first" in str(err.value)
    assert not top.exists() and not (tmp_path / "home").exists()


def test_forked_child_gets_its_own_connections(store):
    import os

    tid = store.start_trace(problem="before fork", requested_mode="fast", model_id="m", backend="fake")
    pid = os.fork()
    if pid == 0:  # child: use the inherited store, then leave without running any cleanup
        code = 1
        try:
            mine = store.start_trace(problem="in the child", requested_mode="fast",
                                     model_id="m", backend="fake")
            store.add_step(mine, StepRecord(kind="stage", name="child"))
            code = 2
            store.add_step(tid, StepRecord(kind="stage", name="child"))  # the parent's trace
        except StoreError as e:  # another process runs it: a fork is one too
            code = 0 if code == 2 and "owned by another process" in str(e) else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.add_step(tid, StepRecord(kind="stage", name="parent"))  # the parent's pool still works
    assert [s.name for s in store.get_trace(tid).steps] == ["parent"]
    (child,) = store.list_traces(status="interrupted")  # its owner is gone
    assert child.problem == "in the child"
    assert [s.name for s in store.get_trace(child.id).steps] == ["child"]


def test_busy_timeout_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="busy_timeout_s"):
        TraceStore(f"sqlite:///{tmp_path / 't.db'}", busy_timeout_s=0)
