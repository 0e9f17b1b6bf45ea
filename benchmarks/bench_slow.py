"""Slow thinking: what the graph machinery and trace writes cost per node, and parallel speed-up.

Uses the scripted backend with a fixed delay per LLM call and a fake tool with a fixed delay per
run, so the time the machinery wraps is known exactly:

1. Overhead: a chain design (reflect, design, 4 sequential experts of which one is a tool
   expert, judge) solved end to end through `Runtime.solve(mode="slow")`. Overhead = solve wall
   time minus the time spent inside LLM calls and tool runs; shown per node and as a share of
   the wrapped time, without a checkpointer, with the SQLite checkpointer, and with the
   PostgreSQL one when the local server answers.
2. Speed-up: a wide design (W independent experts, then a final expert) with W = 2, 4, 8; the
   speed-up is the sum of the experts' LLM time over the workflow's wall time.

    .venv/bin/python benchmarks/bench_slow.py        # --delays 0.05 0.2 1.0 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from agentrt.core.config import Limits, load_settings
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.workflows.slow import run_slow

PG_ADMIN_URL = os.environ.get("AGENTRT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


class TimedTool:
    """A python-like tool that takes `delay` seconds per run and counts its time."""

    name = "python"
    description = "Run a Python program."
    input_schema = {"type": "object", "properties": {"code": {"type": "string"}},
                    "required": ["code"]}

    def __init__(self, delay: float):
        self.delay = delay
        self.busy = 0.0
        self._lock = threading.Lock()

    def run(self, args):
        start = time.perf_counter()
        time.sleep(self.delay)
        with self._lock:
            self.busy += time.perf_counter() - start
        return {"stdout": "55299\n", "stderr": "", "exit_code": 0, "timed_out": False}


class TimedBackend(FakeBackend):
    """The scripted backend, adding up the time spent inside `chat`."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.busy = 0.0
        self._busy_lock = threading.Lock()

    def chat(self, request):
        start = time.perf_counter()
        try:
            return super().chat(request)
        finally:
            with self._busy_lock:
                self.busy += time.perf_counter() - start


def node(id, inputs=(), kind="llm", tool=None):
    d = {"id": id, "kind": kind, "role": "expert", "instruction": "do your part",
         "inputs": list(inputs)}
    if tool:
        d["tool"] = tool
    return d


def backend_for(design: dict, delay: float) -> TimedBackend:
    return TimedBackend(rules=[
        (r"Reflect on the following problem", "Restated."),
        (r"Design a workflow of experts", json.dumps(design)),
        (r"Judge whether", '{"reason": "ok", "verdict": "yes"}'),
        (r"tool: python", '{"code": "print(123*456 - 789)"}'),
        (r"Expert: fin ", "Final answer: 55299"),
        (r"Expert: ", "part done"),
    ], delay_s=delay)


def solve_once(store, design, delay, limits, checkpointed=True):
    """One slow solve; returns (solution, wall seconds, seconds spent inside calls and runs)."""
    backend, tool = backend_for(design, delay), TimedTool(delay)
    rt = Runtime(load_settings(backend="fake", model="fake", limits=limits), backend=backend,
                 store=store, tools={"python": tool})
    if not checkpointed:  # the same solve, with the graph compiled without a checkpointer
        rt._run_mode = lambda mode, problem, context, ctx: run_slow(problem, context, ctx)
    start = time.perf_counter()
    sol = rt.solve("Compute 123*456 - 789", mode="slow")
    wall = time.perf_counter() - start
    assert sol.status == "ok" and sol.answer == "55299", sol
    return sol, wall, backend.busy + tool.busy


def overhead(store, delay, repeat, label, checkpointed=True):
    chain = {"nodes": [node("a"), node("calc", ["a"], kind="tool", tool="python"),
                       node("b", ["calc"]), node("fin", ["b"])], "final": "fin"}
    rows = []
    for _ in range(repeat):
        sol, wall, busy = solve_once(store, chain, delay, Limits(), checkpointed)
        rows.append((wall, busy, sol))
    wall = statistics.median(r[0] for r in rows)
    busy = statistics.median(r[1] for r in rows)
    sol = rows[0][2]
    steps = len(store.get_trace(sol.trace_id).steps)
    nodes = 5 + 4  # graph nodes run: reflect, design, execute, judge, select, and 4 experts
    over = wall - busy
    print(f"| {label} | {delay * 1000:.0f} | {sol.llm_calls} + {sol.tool_runs} | {steps} | "
          f"{wall:.3f} | {busy:.3f} | {over * 1000:.0f} | {over / nodes * 1000:.1f} | "
          f"{100 * over / busy:.1f}% |")


def speedup(store, delay, width):
    design = {"nodes": [node(f"w{i}") for i in range(width)] +
              [node("fin", [f"w{i}" for i in range(width)])], "final": "fin"}
    limits = Limits(max_nodes=width + 1, max_fan_out=width)
    sol, _, _ = solve_once(store, design, delay, limits)
    steps = store.get_trace(sol.trace_id).steps
    [workflow] = [s for s in steps if s.name == "workflow"]
    experts = sum(s.latency_s for s in steps if s.kind == "llm" and s.node is not None)
    print(f"| {width} | {delay * 1000:.0f} | {experts:.2f} | {workflow.latency_s:.2f} | "
          f"{experts / workflow.latency_s:.2f}x | {(width + 1) / 2:.1f}x |")


def _pg_store():
    try:
        import psycopg
        from sqlalchemy.engine import make_url

        name = f"agentrt_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    except Exception as e:  # no server: skip that row
        print(f"(PostgreSQL not reachable: {e})")
        return None, None
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    def drop():
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return TraceStore(url), drop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delays", type=float, nargs="+", default=[0.05, 0.2, 1.0],
                    help="seconds per LLM call / tool run, one table row each")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    sqlite = TraceStore(f"sqlite:///{tmp / 'bench.db'}")
    print("Overhead of graph machinery, trace writes and checkpoints (chain design, median of "
          f"{args.repeat}):\n")
    print("| store / checkpoints | call delay ms | LLM calls + tool runs | trace steps | wall s | "
          "inside calls s | overhead ms | per graph node ms | share |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    solve_once(sqlite, {"nodes": [node("fin")], "final": "fin"}, 0.0, Limits())  # warm-up
    for delay in args.delays:
        overhead(sqlite, delay, args.repeat, "SQLite, no checkpointer", checkpointed=False)
        overhead(sqlite, delay, args.repeat, "SQLite + SQLite checkpoints")
    pg, drop = _pg_store()
    if pg is not None:
        try:
            for delay in args.delays:
                overhead(pg, delay, args.repeat, "PostgreSQL, no checkpointer", checkpointed=False)
                overhead(pg, delay, args.repeat, "PostgreSQL + PostgreSQL checkpoints")
        finally:
            pg.close()
            drop()
    print("\nParallel speed-up of a wide design (W experts, then a final expert):\n")
    print("| W | call delay ms | experts' LLM time s | workflow wall s | speed-up | ideal |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for width in (2, 4, 8):
        speedup(sqlite, 0.5, width)
    sqlite.close()


if __name__ == "__main__":
    main()
