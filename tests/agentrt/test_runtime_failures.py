"""How a solve that fails leaves its trace: real SQLite stores, the scripted backend at the seam.

Covers: an exception outside agentrt's errors (status "error" with its type and message, never
"interrupted"), an interruption (still "interrupted"), a router setting that names no policy
(refused before any trace), a store that fails while a failed solve is being recorded (the
solve's own error is raised, the store's is logged), a store that does not answer (the last
write waits a bounded time), a checkpoint that cannot be read on resume (status "error", so
nothing resumes it again by itself), and a process that stalls past its lease while another
resumes its trace (its late writes are refused; the resumer's answer stands).
"""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import update

from agentrt import runtime as runtime_module
from agentrt.core.config import load_settings
from agentrt.core.errors import BackendError, ConfigError, StoreError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.store.checkpoints import GraphCheckpointBlob
from agentrt.store.lease import Owner
from agentrt.workflows.checkpoint import SqlCheckpointer

REPO = Path(__file__).resolve().parents[2]
OOM = "CUDA out of memory. Tried to allocate 2.00 GiB"


def raising(error: BaseException):
    """A backend reply that raises `error` instead of answering."""
    def reply(request):
        raise error
    return reply


def make_runtime(store, backend, tools=None, **settings) -> Runtime:
    return Runtime(load_settings(backend="fake", model="fake", **settings), backend=backend,
                   store=store, tools={} if tools is None else tools)


def test_an_unexpected_exception_marks_the_trace_error_not_interrupted(store):
    rt = make_runtime(store, FakeBackend(default=raising(RuntimeError(OOM))))
    with pytest.raises(RuntimeError, match="CUDA out of memory") as err:
        rt.solve("What is 2+2?", mode="fast")
    [trace] = store.list_traces()
    assert (trace.status, trace.error) == ("error", f"RuntimeError: {OOM}")
    assert err.value.__notes__[-1] == f"trace {trace.id} was kept with status 'error'"
    [step] = store.get_trace(trace.id).steps  # the failed call is a step, as a backend error is
    assert (step.kind, step.status, step.error) == ("llm", "error", f"RuntimeError: {OOM}")
    assert store.list_traces(status="interrupted") == []  # nothing to resume


def test_an_interruption_still_reads_as_interrupted(store):
    rt = make_runtime(store, FakeBackend(default=raising(KeyboardInterrupt())))
    with pytest.raises(KeyboardInterrupt):
        rt.solve("What is 2+2?", mode="fast")
    [trace] = store.list_traces(status="interrupted")
    assert trace.error == "KeyboardInterrupt"


def test_a_router_setting_that_names_no_policy_starts_no_trace(store):
    rt = make_runtime(store, FakeBackend(), router="escalte")
    with pytest.raises(ConfigError, match="unknown router policy 'escalte'"):
        rt.solve("What is 2+2?", mode="auto")
    assert store.count_traces() == 0


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection that takes the SQLite write lock and keeps it."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    return holder


@pytest.mark.parametrize("error", [BackendError("the model server went away"),
                                   RuntimeError(OOM)], ids=["agentrt", "other"])
def test_a_store_failing_while_a_failure_is_recorded_does_not_hide_it(tmp_path, caplog,
                                                                     error):
    db = tmp_path / "traces.db"
    store = TraceStore(f"sqlite:///{db}", busy_timeout_s=0.2)
    held: list[sqlite3.Connection] = []

    def fail(request):  # the store breaks down just as the call fails
        held.append(_hold_write_lock(db))
        raise error

    rt = make_runtime(store, FakeBackend(default=fail))
    try:
        with caplog.at_level(logging.WARNING), pytest.raises(type(error)) as err:
            rt.solve("What is 2+2?", mode="fast")
        assert err.value is error  # not the store's "database is locked"
        notes = " ".join(err.value.__notes__)
        assert "could not be marked 'error': " in notes and "database is locked" in notes
        logged = [r.getMessage() for r in caplog.records]
        assert any("could not be marked 'error'" in m and "locked" in m for m in logged)
        assert any("could not record failed step" in m for m in logged)
    finally:
        for holder in held:
            holder.rollback()
            holder.close()
        store.close()


def test_the_last_write_of_a_failed_solve_waits_a_bounded_time(tmp_path, monkeypatch):
    monkeypatch.setattr(runtime_module, "CLEANUP_WAIT_S", 1.0)
    db = tmp_path / "traces.db"
    store = TraceStore(f"sqlite:///{db}", busy_timeout_s=30)
    held: list[sqlite3.Connection] = []

    def on_step(step):  # once the failed call is recorded, the store stops answering
        if step.status == "error":
            held.append(_hold_write_lock(db))

    rt = make_runtime(store, FakeBackend(default=raising(RuntimeError(OOM))))
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeError) as err:
            rt.solve("What is 2+2?", mode="fast", on_step=on_step)
        waited = time.monotonic() - started
        assert waited < 15, f"waited {waited:.1f} s for a store with a 30 s busy timeout"
        assert "did not answer within 1 s" in " ".join(err.value.__notes__)
    finally:
        for holder in held:
            holder.rollback()
            holder.close()
    deadline = time.monotonic() + 30  # the write was not given up, only the wait for it
    while (trace := store.list_traces()[0]).status == "running":
        assert time.monotonic() < deadline, "the late write never landed"
        time.sleep(0.1)
    assert (trace.status, trace.error) == ("error", f"RuntimeError: {OOM}")
    store.close()


def _design() -> str:
    return json.dumps({"nodes": [
        {"id": "calc", "kind": "tool", "tool": "python", "role": "coder",
         "instruction": "compute", "inputs": []},
        {"id": "fin", "kind": "llm", "role": "checker", "instruction": "answer",
         "inputs": ["calc"]}], "final": "fin"})


def test_a_checkpoint_that_cannot_be_read_ends_the_trace_as_error(store):
    backend = FakeBackend(rules=[
        (r"Reflect on the following problem", "Restated: a sum."),
        (r"Design a workflow of experts", _design()),
        (r"Expert: ", raising(KeyboardInterrupt())),  # stopped after two stages were saved
    ])
    with pytest.raises(KeyboardInterrupt):
        make_runtime(store, backend).solve("Compute 100+11", mode="slow")
    [trace] = store.list_traces(status="interrupted")
    assert SqlCheckpointer(store.engine).count(trace.id)["blobs"] > 0
    blobs = GraphCheckpointBlob.__table__
    with store.engine.begin() as conn:  # the saved values are damaged
        conn.execute(update(blobs).where(blobs.c.thread_id == trace.id)
                     .values(blob=b"\xc1 not what was saved"))

    with pytest.raises(StoreError, match=f"checkpoint .* of thread {trace.id} is unreadable"):
        make_runtime(store, backend).resume(trace.id)
    failed = store.get_trace(trace.id)
    assert failed.status == "error" and "is unreadable" in failed.error
    assert store.list_traces(status="interrupted") == []  # resumers look no further


# The stalling process: a slow solve whose tool says when it runs, then takes a few seconds.
STALLED = textwrap.dedent(r'''
    import json, sys, time
    from pathlib import Path
    from agentrt.core.config import load_settings
    from agentrt.llm.fake import FakeBackend
    from agentrt.runtime import Runtime
    from agentrt.store import TraceStore

    DESIGN = @DESIGN@

    def backend(answer):
        return FakeBackend(rules=[
            (r"Reflect on the following problem", "Restated: a sum."),
            (r"Design a workflow of experts", DESIGN),
            (r"Judge whether its final answer", '{"reason": "checked", "verdict": "yes"}'),
            (r"Expert: calc \([^)]*\), tool: python", '{"code": "print(100+11)"}'),
            (r"Expert: fin ", f"The tool printed {answer}.\nFinal answer: {answer}"),
        ], default=None)

    class Tool:
        name, description = "python", "Run a Python program."
        input_schema = {"type": "object", "required": ["code"],
                        "properties": {"code": {"type": "string"}}}

        def __init__(self, answer, started=None):
            self.answer, self.started = answer, started

        def run(self, args):
            if self.started:
                Path(self.started).touch()
                time.sleep(3)
            return {"stdout": self.answer + "\n", "stderr": "", "exit_code": 0,
                    "timed_out": False}

    def runtime(store, answer, started=None):
        return Runtime(load_settings(backend="fake", model="fake"), backend=backend(answer),
                       store=store, tools={"python": Tool(answer, started)})

    if __name__ == "__main__":
        url, started = sys.argv[1:3]
        try:
            sol = runtime(TraceStore(url, lease_s=2), "111", started).solve(
                "Compute 100+11", mode="slow")
            print("SOLVED", sol.answer)
        except Exception as e:
            print("RAISED", type(e).__name__, e)
''').replace("@DESIGN@", repr(_design()))


def test_a_stalled_process_cannot_finish_the_trace_another_resumed(tmp_path):
    url, started = f"sqlite:///{tmp_path / 'traces.db'}", tmp_path / "tool-started"
    script = tmp_path / "stalled.py"
    script.write_text(STALLED)
    child = subprocess.Popen([sys.executable, str(script), url, str(started)],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = TraceStore(url, lease_s=2)
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, "the child never reached its tool run"
            time.sleep(0.05)
        child.send_signal(signal.SIGSTOP)  # it stalls: no heartbeat, no progress
        [trace] = store.list_traces()
        while not store.get_trace(trace.id).orphaned:  # its lease runs out
            assert time.monotonic() < deadline, "the stalled trace never read as interrupted"
            time.sleep(0.1)

        shared: dict = {}
        exec(compile(STALLED, "stalled", "exec"), shared)
        sol = shared["runtime"](store, "222").resume(trace.id)
        assert (sol.answer, sol.status) == ("222", "ok")
    finally:
        child.send_signal(signal.SIGCONT)
        out, errors = child.communicate(timeout=120)
    assert out.startswith("RAISED StoreError"), (out, errors)
    assert "is owned by another process" in out and "finished it with status 'ok'" in out

    final = store.get_trace(trace.id, superseded=True)
    assert (final.status, final.answer, final.owner) == ("ok", "222", Owner.current().key)
    assert final.meta["resumes"] == 1
    assert "111" not in json.dumps([s.outputs for s in final.steps])  # nothing of the late run
    store.close()
