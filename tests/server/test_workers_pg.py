"""`agentrt serve --workers 2` on PostgreSQL: concurrent solves through both workers, every
trace kept."""

from __future__ import annotations

import asyncio
import sys

import pytest
from helpers import fresh_pg_database
from server_harness import launch, stop


pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url():
    """One database for the module's shared server (tests/conftest.py's `pg_url` is per test)."""
    with fresh_pg_database("agentrt_server", "postgresql+psycopg") as url:
        yield url


@pytest.fixture(scope="module")
def workers(tmp_path_factory, pg_url):
    cmd = [sys.executable, "-m", "agentrt.cli", "serve", "--workers", "2", "--backend", "fake",
           "--model", "fake-pg", "--database-url", pg_url, "--log-level", "warning"]
    server = launch(tmp_path_factory.mktemp("workers"), cmd=cmd)
    yield server
    stop(server)


async def test_concurrent_solves_across_workers_all_kept(workers, pg_url):
    import psutil

    assert len(psutil.Process(workers.proc.pid).children()) >= 2  # the worker processes
    client = workers.aclient()

    async def solve(i: int):
        raw = await client.chat.completions.with_raw_response.create(
            model="agentrt-fast", messages=[{"role": "user", "content": f"Problem {i}: 2+{i}?"}])
        return raw.headers["x-agentrt-trace-id"], raw.parse().choices[0].message.content

    results = await asyncio.gather(*[solve(i) for i in range(24)])
    await client.close()
    ids = [t for t, _ in results]
    assert len(set(ids)) == 24 and all(a == "42" for _, a in results)
    from agentrt.store import TraceStore

    with TraceStore(pg_url) as store:
        assert store.count_traces() == 24
        traces = [store.get_trace(t) for t in ids]
    assert all(t.status == "ok" and t.llm_calls == 2 and len(t.steps) == 4 for t in traces)
    assert sorted(t.problem for t in traces) == sorted(f"Problem {i}: 2+{i}?" for i in range(24))
