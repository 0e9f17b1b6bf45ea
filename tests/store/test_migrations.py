"""Schema migrations: head equals the ORM models, concurrent first opens, unknown revisions,
and a current schema read without the migration lock (a read-only directory)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from agentrt.core.errors import StoreError
from agentrt.store import TraceStore
from agentrt.store.migrate import alembic_config, current_revision, head_revision, target_metadata


def test_head_matches_the_models(store):
    with store.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        diff = compare_metadata(ctx, target_metadata())
        assert diff == [], f"migrations and models differ: {diff}"
        assert current_revision(conn) == head_revision()
    names = set(inspect(store.engine).get_table_names())
    assert {"traces", "trace_tags", "steps", "alembic_version"} <= names


def test_two_processes_migrate_a_fresh_database_at_once(db_url, spawn):
    start, go, wait = spawn
    for worker in ("m1", "m2"):
        start(db_url, "migrate", worker, n_traces=2, n_steps=3)
    go()
    wait()
    with TraceStore(db_url) as store:
        with store.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [head_revision()]
        assert store.count_traces(status="ok") == 4
        for worker in ("m1", "m2"):
            assert store.count_traces(tags={"worker": worker}) == 2


def test_unknown_newer_revision_is_refused(db_url):
    TraceStore(db_url).close()
    with TraceStore(db_url) as store:
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="revision '9999'.*does not know"):
        TraceStore(db_url)


def test_downgrade_and_upgrade_through_alembic_commands(db_url):
    with TraceStore(db_url) as store:
        with store.engine.begin() as conn:
            command.downgrade(alembic_config(connection=conn), "base")
        assert "traces" not in inspect(store.engine).get_table_names()
        with store.engine.begin() as conn:
            command.upgrade(alembic_config(connection=conn), "head")
        assert store.count_traces() == 0


def test_offline_sql_for_both_dialects():
    for url in ("sqlite:///offline.db", "postgresql://u@h/db"):
        cfg = alembic_config(url)
        cfg.output_buffer = io.StringIO()
        command.upgrade(cfg, "head", sql=True)
        sql = cfg.output_buffer.getvalue()
        assert "CREATE TABLE traces" in sql and "CREATE TABLE steps" in sql
        assert ("JSONB" in sql) == url.startswith("postgresql")


_LIST = """
import sys
from agentrt.core.errors import StoreError
from agentrt.store import TraceStore
try:
    with TraceStore(sys.argv[1]) as store:
        print("listed", [t.problem for t in store.list_traces()])
except StoreError as e:
    print("error", e)
"""


@pytest.fixture
def read_only_dir():
    """A directory this test's reader process cannot write: mode 555, and when the tests run as
    root (who may write anywhere), the reader runs as `nobody`. Returns (folder, run_reader)."""
    as_nobody: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to read as another user")
        as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        probe = subprocess.run([*as_nobody, sys.executable, "-c", "import agentrt.store"],
                               capture_output=True, timeout=120, cwd="/")
        if probe.returncode != 0:  # a checkout or environment only its owner may read
            pytest.skip("user nobody cannot import this checkout's agentrt")
    folder = Path(tempfile.mkdtemp(prefix="agentrt-ro-", dir="/tmp"))
    folder.chmod(0o755)

    def run_reader(url: str) -> str:
        folder.chmod(0o555)
        try:
            proc = subprocess.run([*as_nobody, sys.executable, "-c", _LIST, url],
                                  capture_output=True, text=True, timeout=120, cwd="/")
        finally:
            folder.chmod(0o755)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    yield folder, run_reader
    folder.chmod(0o755)
    shutil.rmtree(folder)


def test_a_current_sqlite_store_opens_to_read_in_a_read_only_directory(read_only_dir):
    folder, run_reader = read_only_dir
    db = folder / "traces.db"
    url = f"sqlite:///{db}"
    with TraceStore(url) as store:
        tid = store.start_trace(problem="2+2?", requested_mode="fast", model_id="m",
                                backend="fake")
        store.finish_trace(tid, answer="4", status="ok", mode="fast")
        for lock in folder.glob("*.lock"):  # not needed to read a current schema
            lock.unlink()
        # While a writer has it open (a server, a solve), its WAL files are there to share.
        assert run_reader(url) == "listed ['2+2?']"
    assert sorted(p.name for p in folder.iterdir()) == ["traces.db"]
    # Alone, a WAL database needs those files created beside it: a clear error says so.
    out = run_reader(url)
    assert out.startswith("error cannot open trace store") and "is not writable" in out, out
