"""Trace store throughput and latency on SQLite (temp file) and PostgreSQL (fresh database).

    .venv/bin/python benchmarks/bench_store.py [--traces 400] [--threads 8] [--pg URL|--no-pg]

For each database: time to open a fresh database (migrations included) and to reopen one at
head; complete traces per second (start, 5 steps one by one, finish) from one thread and from
`--threads` threads; steps per second written in batches of 50; p50/p95 of get_trace (full id
and 8-character prefix), of list_traces(limit=20) with a tag filter and of count_traces with a
tag filter, over all the traces written. PostgreSQL uses a throw-away database created through
the admin URL (default postgresql://postgres@127.0.0.1:5432/test) and dropped afterwards.
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from agentrt.store import StepRecord, TraceStore
from agentrt.core.types import Usage


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def one_trace(store: TraceStore, worker: str, i: int) -> str:
    tid = store.start_trace(problem=f"problem {worker}-{i}", requested_mode="auto",
                            model_id="bench", backend="fake", tags={"worker": worker})
    for j in range(5):
        store.add_step(tid, StepRecord(kind="llm", name=f"s{j}", inputs={"prompt": "x" * 200},
                                       outputs={"text": "y" * 200}, prompt_tokens=50))
    store.finish_trace(tid, answer=str(i), status="ok", mode="fast",
                       usage=Usage(prompt_tokens=250, completion_tokens=40), llm_calls=5)
    return tid


def traces_per_s(store: TraceStore, n: int, threads: int, tag: str) -> tuple[float, list[str]]:
    ids: list[str] = []
    lock = threading.Lock()

    def run(w: int) -> None:
        mine = [one_trace(store, f"{tag}{w}", i) for i in range(n // threads)]
        with lock:
            ids.extend(mine)

    t0 = time.perf_counter()
    workers = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return len(ids) / (time.perf_counter() - t0), ids


def latencies(fn, n: int = 100) -> tuple[float, float]:
    xs = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        xs.append((time.perf_counter() - t0) * 1000)
    return pct(xs, 0.5), pct(xs, 0.95)


def bench(url: str, n: int, threads: int) -> dict[str, str]:
    t0 = time.perf_counter()
    store = TraceStore(url)
    fresh = time.perf_counter() - t0
    t0 = time.perf_counter()
    TraceStore(url).close()
    reopen = time.perf_counter() - t0
    single, ids = traces_per_s(store, n // 4, 1, "single")
    multi, more = traces_per_s(store, n, threads, "multi")
    ids += more
    tid = ids[0]
    batch = [StepRecord(kind="tool", name="b", outputs={"v": list(range(20))}) for _ in range(50)]
    t0 = time.perf_counter()
    for _ in range(20):
        store.add_steps(tid, batch)
    steps_s = 20 * 50 / (time.perf_counter() - t0)
    probe = ids[len(ids) // 2]
    get_full = latencies(lambda: store.get_trace(probe))
    get_prefix = latencies(lambda: store.get_trace(probe[:8]))
    listed = latencies(lambda: store.list_traces(limit=20, tags={"worker": "multi0"}))
    counted = latencies(lambda: store.count_traces(tags={"worker": "multi0"}))
    total = store.count_traces()
    store.close()
    ms = "{:.2f} / {:.2f}".format
    return {
        "traces stored": str(total),
        "open fresh (migrate), s": f"{fresh:.3f}",
        "reopen at head, s": f"{reopen:.3f}",
        "traces/s, 1 thread (start + 5 steps + finish)": f"{single:.0f}",
        f"traces/s, {threads} threads": f"{multi:.0f}",
        "steps/s in batches of 50": f"{steps_s:.0f}",
        "get_trace full id p50 / p95 ms": ms(*get_full),
        "get_trace 8-char prefix p50 / p95 ms": ms(*get_prefix),
        "list_traces(20, tag) p50 / p95 ms": ms(*listed),
        "count_traces(tag) p50 / p95 ms": ms(*counted),
    }


def pg_database(admin_url: str):
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"agentrt_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=400)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    ap.add_argument("--no-pg", action="store_true")
    args = ap.parse_args()
    results: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLite (WAL)"] = bench(f"sqlite:///{tmp}/bench.db", args.traces, args.threads)
    if not args.no_pg:
        try:
            url, drop = pg_database(args.pg)
        except Exception as e:  # report and carry on with SQLite only
            print(f"PostgreSQL skipped: {str(e).splitlines()[0]}")
        else:
            try:
                results["PostgreSQL"] = bench(url, args.traces, args.threads)
            finally:
                drop()
    names = list(results)
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for key in results[names[0]]:
        print(f"| {key} | " + " | ".join(results[n][key] for n in names) + " |")


if __name__ == "__main__":
    main()
