"""Many writers at once: 8 threads and 4 processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

N_TRACES, N_STEPS = 25, 5


@pytest.mark.timeout(240)
def test_threads_and_processes_write_at_once_and_nothing_is_lost(store, db_url, spawn, workers):
    start, go, wait = spawn
    processes = [f"p{i}" for i in range(4)]
    threads_ = [f"t{i}" for i in range(8)]
    for worker in processes:
        start(db_url, "write", worker, N_TRACES, N_STEPS)
    errors: list[BaseException] = []
    gate = threading.Event()

    def run(worker: str) -> None:
        gate.wait()
        try:
            workers.write_traces(store, worker, N_TRACES, N_STEPS)
        except BaseException as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in threads_]
    for t in threads:
        t.start()
    try:
        go()
    finally:
        gate.set()  # never leave the threads waiting, even when a process failed to start
    for t in threads:
        t.join(timeout=180)
    wait()
    assert errors == []

    n_workers = len(processes) + len(threads_)
    with store.engine.connect() as conn:
        traces = conn.execute(text("SELECT count(*) FROM traces")).scalar()
        steps = conn.execute(text("SELECT count(*) FROM steps")).scalar()
        tags = conn.execute(text("SELECT count(*) FROM trace_tags")).scalar()
        per_trace = conn.execute(
            text("SELECT t.id, count(s.id) FROM traces t LEFT JOIN steps s ON s.trace_id = t.id GROUP BY t.id")
        ).all()
    assert traces == tags == n_workers * N_TRACES
    assert steps == n_workers * N_TRACES * N_STEPS
    assert {n for _, n in per_trace} == {N_STEPS}  # no half-written trace
    assert store.count_traces(status="ok") == traces
    for worker in processes + threads_:
        mine = store.list_traces(tags={"worker": worker}, limit=100)
        assert sorted(t.problem for t in mine) == sorted(f"{worker} problem {i}" for i in range(N_TRACES))
    sample = store.get_trace(mine[0].id)
    assert [s.name for s in sample.steps] == [f"step{j}" for j in range(N_STEPS)]
    assert sample.usage.prompt_tokens == sum(range(N_STEPS)) and sample.llm_calls == N_STEPS
