"""Fixtures for the store tests: a fresh database per test on SQLite and on PostgreSQL.

The PostgreSQL parameter creates `agentrt_test_<random>` through the admin URL
(`AGENTRT_TEST_PG_URL`, default postgresql://postgres@127.0.0.1:5432/test) and drops it after the
test; it is skipped, with the reason, when that server cannot be reached.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

PG_ADMIN_URL = os.environ.get("AGENTRT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
_WORKERS = Path(__file__).with_name("workers.py")
_pg_state: dict[str, str | None] = {}


def _pg_unavailable() -> str | None:
    """None when the PostgreSQL admin URL answers, else why not (checked once per run)."""
    if "reason" not in _pg_state:
        try:
            import psycopg

            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
                _pg_state["reason"] = None
        except Exception as e:  # any failure means: skip the PostgreSQL parameter
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            _pg_state["reason"] = f"PostgreSQL at {PG_ADMIN_URL} is not reachable: {first}"
    return _pg_state["reason"]


def _pg_url(database: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_ADMIN_URL).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """URL of a fresh, empty (never migrated) database, dropped after the test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'traces.db'}"
        return
    reason = _pg_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    name = f"agentrt_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        yield _pg_url(name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def store(db_url):
    """An open store on a fresh database."""
    from agentrt.store import TraceStore

    s = TraceStore(db_url)
    yield s
    s.close()


@pytest.fixture(scope="session")
def workers():
    """The writer module shared by thread and process tests."""
    spec = importlib.util.spec_from_file_location("store_test_workers", _WORKERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def spawn(workers, tmp_path):
    """Start writer processes that begin together; returns (start, go, wait) helpers."""
    sync = tmp_path / "sync"
    sync.mkdir()
    procs: list[tuple[str, subprocess.Popen]] = []

    def start(url: str, role: str, worker: str, n_traces: int, n_steps: int) -> None:
        args = [sys.executable, str(_WORKERS), url, role, worker, str(n_traces), str(n_steps), str(sync)]
        procs.append((worker, subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)))

    def go(timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        for worker, proc in procs:
            while not (sync / f"ready-{worker}").exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    out = proc.communicate()[0].decode()
                    raise AssertionError(f"worker {worker} never became ready:\n{out}")
                time.sleep(0.005)
        (sync / "go").touch()

    def wait(timeout_s: float = 120.0) -> None:
        for worker, proc in procs:
            out, _ = proc.communicate(timeout=timeout_s)
            assert proc.returncode == 0, f"worker {worker} failed:\n{out.decode()}"

    yield start, go, wait
    for _, proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
