"""Server time of the web UI's two heaviest pages: the trace list over 10,000 traces, and the
page of a trace with 200 steps (a slow solve's workflow graph and every step panel).

    .venv/bin/python benchmarks/bench_ui.py                       # SQLite file in a temp dir
    .venv/bin/python benchmarks/bench_ui.py --database-url postgresql://postgres@127.0.0.1:5432/bench_ui

It fills a fresh store (`--traces` traces with tags, bulk-inserted; one slow trace of `--steps`
steps over 4 rounds of 12 nodes, written through `TraceStore.add_steps`), builds the UI app
(`agentrt.server.ui.create_ui_app`) and requests each page `--repeat` times in process through
Starlette's test client (ASGI, no network: the figure is the server's time to answer),
printing the median and the 95th percentile in milliseconds. A PostgreSQL URL must name an
existing, empty database.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import insert

from agentrt.server.config import ServerConfig
from agentrt.server.ui import UISources, create_ui_app
from agentrt.store import StepRecord, TraceStore
from agentrt.store.models import Trace, TraceTag
from agentrt.store.records import utcnow


def fill(store: TraceStore, n: int) -> None:
    now = utcnow()
    traces, tags = [], []
    for i in range(n):
        tid = uuid.uuid4().hex
        mode = ("fast", "slow", "auto")[i % 3]
        traces.append(dict(
            id=tid, problem=f"Problem {i}: what is {i} * {i % 97} + {i % 13}? " + "words " * 20,
            requested_mode=mode, mode=mode, answer=str(i * (i % 97) + i % 13),
            status="ok" if i % 17 else "error", verdict="yes" if i % 5 else "no",
            model_id="smollm2-135m", backend="hf", prompt_tokens=300 + i % 400,
            completion_tokens=80 + i % 200, llm_calls=2 + i % 9, tool_runs=i % 3,
            latency_s=0.5 + (i % 50) / 10, error=None, meta={}, created_at=now - timedelta(seconds=i),
            finished_at=now - timedelta(seconds=i), owner=None, heartbeat_at=None))
        tags += [dict(trace_id=tid, key="source", value="api" if i % 2 else "eval"),
                 dict(trace_id=tid, key="eval_run", value=f"run-{i % 40}")]
    with store.transaction("fill", write=True) as s:
        for k in range(0, n, 2000):
            s.execute(insert(Trace.__table__), traces[k:k + 2000])
            s.execute(insert(TraceTag.__table__), tags[2 * k:2 * k + 4000])


def slow_trace(store: TraceStore, steps: int) -> str:
    tid = store.start_trace(problem="A long slow solve: " + "x " * 200, requested_mode="slow",
                            model_id="smollm2-135m", backend="hf")
    records, rnd = [], 0
    nodes = [f"n{j}" for j in range(12)]
    spec = {"nodes": [{"id": n, "kind": "tool" if j % 4 == 0 else "llm", "tool": "python",
                       "role": "expert", "inputs": nodes[max(0, j - 2):j]}
                      for j, n in enumerate(nodes)], "final": nodes[-1]}
    layers = [nodes[k:k + 3] for k in range(0, 12, 3)]
    while len(records) < steps:
        rnd += 1
        records.append(StepRecord(kind="stage", name="design_accepted", round=rnd,
                                  outputs={"spec": spec, "layers": layers}))
        for n in nodes:
            if len(records) >= steps:
                break
            msgs = [{"role": "system", "content": "You are an expert. " * 40},
                    {"role": "user", "content": f"Solve part {n}. " * 60}]
            records.append(StepRecord(kind="llm", name="expert", node=n, round=rnd,
                                      inputs={"messages": msgs}, outputs={"text": "reply " * 120},
                                      prompt_tokens=900, completion_tokens=150, latency_s=1.2))
            records.append(StepRecord(kind="tool", name="python", node=n, round=rnd,
                                      inputs={"code": "print(1)\n" * 10},
                                      outputs={"stdout": "1\n" * 10, "exit_code": 0}))
            records.append(StepRecord(kind="stage", name="node", node=n, round=rnd,
                                      outputs={"text": "done"}, latency_s=1.5))
    store.add_steps(tid, records[:steps])
    store.finish_trace(tid, answer="42", status="ok", mode="slow")
    return tid


def timed(client: TestClient, url: str, repeat: int) -> tuple[float, float, int]:
    client.get(url)  # warm: templates compiled, connections pooled
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (url, r.status_code)
    times.sort()
    return statistics.median(times), times[int(0.95 * (len(times) - 1))], len(r.content)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--database-url", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        store = TraceStore(url)
        t0 = time.perf_counter()
        fill(store, args.traces)
        tid = slow_trace(store, args.steps)
        print(f"store {store.url}: {args.traces} traces + one of {args.steps} steps "
              f"in {time.perf_counter() - t0:.1f} s")
        client = TestClient(create_ui_app(UISources(store, Path(tmp)), ServerConfig()))
        pages = [("trace list, page 1", "/ui/traces"),
                 ("trace list, page 100", "/ui/traces?page=100"),
                 ("trace list, mode + status", "/ui/traces?mode=slow&status=ok"),
                 ("trace list, tag", "/ui/traces?tag=eval_run%3Drun-7"),
                 ("trace list, text search", "/ui/traces?q=what+is+77"),
                 ("trace list, model", "/ui/traces?model=smollm2-135m"),
                 (f"trace page, {args.steps} steps", f"/ui/traces/{tid}")]
        print(f"| page | median ms | p95 ms | bytes |\n|---|---:|---:|---:|")
        for name, path in pages:
            med, p95, size = timed(client, path, args.repeat)
            print(f"| {name} | {med:.1f} | {p95:.1f} | {size:,} |")
        store.close()


if __name__ == "__main__":
    main()
