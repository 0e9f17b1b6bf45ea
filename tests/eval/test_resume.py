"""Resuming an evaluation whose driver died: a real driver process killed with SIGKILL mid-run,
then `resume_eval` (and `agentrt eval --resume`) finish the run in its own directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentrt.core.errors import ConfigError
from agentrt.eval.harness import resume_eval
from agentrt.eval.runs import load_run
from agentrt.store import TraceStore

sys.path.insert(0, str(Path(__file__).parent))
from crash_driver import runtime  # noqa: E402 - the driver's own runtime, without its delay

N = 12


def sums(path: Path) -> str:
    path.write_text("".join(json.dumps({"id": f"s{i}", "question": f"What is {i} + {2 * i}?",
                                        "answer": str(3 * i), "grader": "numeric"}) + "\n"
                            for i in range(N)))
    return f"jsonl:{path}"


def crashed_run(tmp_path: Path, mode: str = "slow") -> tuple[Path, str, str]:
    """A run whose driver was SIGKILLed after 3 results, with a solve in flight."""
    runs, db_url, bench = tmp_path / "runs", f"sqlite:///{tmp_path / 'traces.db'}", \
        sums(tmp_path / "sums.jsonl")
    runs.mkdir()
    store = TraceStore(db_url)
    driver = subprocess.Popen([sys.executable, str(Path(__file__).with_name("crash_driver.py")),
                               str(runs), db_url, bench, "0.15", mode])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            found = list(runs.glob("*/results.jsonl"))
            if found and len(found[0].read_text().splitlines()) >= 3 and store.list_traces(
                    limit=1, status="running", tags={"eval_bench": bench}):
                break
            assert driver.poll() is None, "the driver ended before it was killed"
            time.sleep(0.05)
        else:
            pytest.fail("the driver wrote no results")
        os.kill(driver.pid, signal.SIGKILL)  # the driver this test started
        driver.wait(timeout=30)
    finally:
        store.close()
        if driver.poll() is None:
            driver.kill()
    [run_dir] = [p.parent for p in runs.glob("*/manifest.json")]
    return run_dir, db_url, str(runs / "home")


def test_a_crashed_run_resumes_where_it_stopped(tmp_path):
    run_dir, db_url, home = crashed_run(tmp_path)
    before = load_run(run_dir)
    assert before.manifest.status == "running" and 3 <= len(before.results) < N
    rt = runtime(db_url, home)
    seen = []
    run = resume_eval(rt, run_dir, on_result=seen.append)
    assert run.manifest.status == "done" and run.manifest.resumes == 1
    assert [r.index for r in run.results] == list(range(N))  # each problem once
    assert all(r.correct and r.error is None for r in run.results), \
        [(r.index, r.status, r.error, r.answer) for r in run.results if not r.correct or r.error]
    assert len(seen) == N - len(before.results)  # only the missing ones were solved
    traces = rt.store.list_traces(limit=100, tags={"eval_run": run.run_id})
    assert not [t for t in traces if t.status in ("running", "interrupted")]  # none left behind
    by_problem = {}
    for t in traces:
        by_problem.setdefault(t.tags["eval_problem"], []).append(t)
    assert sorted(by_problem) == sorted(f"s{i}" for i in range(N))
    # The solves the crash cut off were continued from their checkpoints, not solved again.
    continued = [t for t in traces if t.meta.get("resumes")]
    assert continued and all(len(ts) == 1 for ts in by_problem.values())
    assert all(t.status == "ok" for t in traces)
    assert resume_eval(rt, run_dir).manifest.resumes == 1  # a finished run is left as it is
    rt.close()


def test_a_crashed_fast_run_solves_its_cut_off_problems_anew(tmp_path):
    run_dir, db_url, home = crashed_run(tmp_path, mode="fast")
    before = load_run(run_dir)
    rt = runtime(db_url, home)
    lost = [t.id for t in rt.store.list_traces(limit=100, status="interrupted",
                                                   tags={"eval_run": before.run_id})]
    assert lost  # solves the crash cut off (their owner is gone)
    run = resume_eval(rt, run_dir)
    assert run.manifest.status == "done" and [r.index for r in run.results] == list(range(N))
    assert all(r.correct for r in run.results)
    for trace_id in lost:  # a fast solve keeps no checkpoint: closed, and solved again
        trace = rt.store.get_trace(trace_id, steps=False)
        assert trace.status == "cancelled" and "solved again" in trace.error
    ok = rt.store.list_traces(limit=100, status="ok", tags={"eval_run": run.run_id})
    assert sorted(t.tags["eval_problem"] for t in ok) == sorted(f"s{i}" for i in range(N))
    rt.close()


def test_a_run_resumes_only_with_its_own_settings(tmp_path):
    run_dir, db_url, home = crashed_run(tmp_path)
    from agentrt.core.config import Limits, load_settings
    from agentrt.runtime import Runtime
    from crash_driver import backend

    other = load_settings(backend="fake", model="fake", home=home, database_url=db_url,
                          limits=Limits(max_rounds=2))
    with pytest.raises(ConfigError, match="max_rounds"):
        resume_eval(Runtime(other, backend=backend()), run_dir)
    with (run_dir / "results.jsonl").open("a") as f:
        f.write('{"index": 7, "problem_')  # a line the crash cut short
    from agentrt.cli import main

    # The command line takes the run's own limits; the model must be the run's.
    os.environ["AGENTRT_DATABASE_URL"] = db_url
    try:
        with pytest.raises(SystemExit):  # another model: a one-line error, nothing solved
            main(["eval", "--resume", str(run_dir), "--backend", "fake", "--model", "other",
                  "--no-report"])
        assert load_run(run_dir).manifest.resumes == 0
        main(["eval", "--resume", run_dir.name, "--out", str(run_dir.parent), "--backend",
              "fake", "--model", "fake", "--no-report", "--workers", "3"])
    finally:
        del os.environ["AGENTRT_DATABASE_URL"]
    run = load_run(run_dir)
    assert run.manifest.status == "done" and run.manifest.resumes == 1
    assert [r.index for r in run.results] == list(range(N))
