"""Batches of solves on local threads against a local Ray cluster of 2 and then 4 workers.

Every solve is a fast-mode solve of a sum on the scripted backend sleeping `--delay` seconds per
call (two calls a solve: answer and self-check), so a solve costs about 2 x delay of waiting and
the rest is our own work: building prompts, recording steps in the store, grading, scheduling.
Traces go to a fresh PostgreSQL database (dropped afterwards) that every worker writes to.

Per configuration it prints wall seconds, solves per second, the mean solve latency measured
inside the solve, and the scheduling overhead per solve: wall x concurrency / solves minus that
mean latency (the time a slot spends per solve outside the solve itself: queueing, task dispatch,
pickling, fetching results, the worker building its runtime, the driver's bookkeeping).

    python benchmarks/bench_ray.py --solves 400
    python benchmarks/bench_ray.py --solves 80 --configs local:2,ray:2
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from agentrt.core.config import load_settings
from agentrt.eval.harness import EvalSpec, run_eval
from agentrt.execute import LocalExecutor, RayExecutor
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime

ADMIN = "postgresql://127.0.0.1:5432/test"


def answer_sums(request):
    a, b = map(int, re.search(r"(\d+) \+ (\d+)", request.messages[-1].content).groups())
    return f"{a} + {b} is {a + b}.\nFinal answer: {a + b}"


class SleepyRuntime:
    """Picklable factory: a runtime on the scripted backend that sleeps `delay_s` per call."""

    def __init__(self, settings, delay_s):
        self.settings, self.delay_s = settings, delay_s

    def __call__(self):
        backend = FakeBackend(rules=[(r"Proposed (final )?answer", '{"verdict": "yes", '
                                      '"reason": "ok"}'), (r".*", answer_sums)],
                              delay_s=self.delay_s)
        return Runtime(self.settings, backend=backend)


def run_one(kind: str, n: int, factory: SleepyRuntime, bench: str) -> dict:
    import ray  # heavy: ray

    spec = EvalSpec(bench=bench, mode="fast", workers=n)
    if kind == "ray":
        ray.init(num_cpus=n, include_dashboard=False, log_to_driver=False)
        executor = RayExecutor(factory)
        run_eval(factory(), spec.model_copy(update={"limit": n}), executor=executor)  # warm up
    else:
        executor = LocalExecutor(n)
    rt = factory()
    started = time.perf_counter()
    try:
        run = run_eval(rt, spec, executor=executor)
    finally:
        if kind == "ray":
            ray.shutdown()
    wall = time.perf_counter() - started
    solves = len(run.results)
    latency = sum(r.latency_s for r in run.results) / solves
    assert all(r.correct for r in run.results), "a solve went wrong"
    return {"config": f"{kind}:{n}", "solves": solves, "wall_s": round(wall, 2),
            "solves_per_s": round(solves / wall, 2), "solve_latency_s": round(latency, 3),
            "overhead_per_solve_ms": round(1000 * (wall * n / solves - latency), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--solves", type=int, default=400)
    ap.add_argument("--delay", type=float, default=0.2, help="seconds per backend call")
    ap.add_argument("--configs", default="local:2,ray:2,local:4,ray:4",
                    help="kind:concurrency, comma separated (ray:N starts a cluster of N CPUs)")
    args = ap.parse_args()
    name = f"agentrt_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0')
    try:
        url = make_url(ADMIN).set(database=name).render_as_string(hide_password=False)
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "sums.jsonl"
            data.write_text("".join(json.dumps({"id": f"s{i}", "question": f"What is {i} + {i}?",
                                                "answer": str(2 * i), "grader": "numeric"}) + "\n"
                                    for i in range(args.solves)))
            settings = load_settings(backend="fake", model="fake", home=Path(tmp) / "home",
                                     database_url=url)
            factory = SleepyRuntime(settings, args.delay)
            for config in args.configs.split(","):
                kind, n = config.split(":")
                print(json.dumps(run_one(kind, int(n), factory, f"jsonl:{data}")), flush=True)
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
