"""Resume after a kill inside a tool node: every LLM call counts once, in totals and in datasets.

A child process runs a slow solve on the scripted backend and is killed with SIGKILL while its
python tool runs; a parallel expert of the same superstep has finished by then. The resumed solve
runs the tool node again (its first `tool_input` call is superseded) but not the finished expert
(LangGraph keeps its pending writes). The resumed trace's totals, and an SFT dataset built from
it, must equal those of an uninterrupted solve of the same problem with the same script.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import killed_at_checkpoint, saved_outputs
from rich.console import Console

from agentrt.cli.render import render_trace
from agentrt.data_synth.compile import BuildSpec, build_dataset
from agentrt.data_synth.generators import generate
from agentrt.data_synth.verify import problem_tags
from agentrt.store import TraceStore
from agentrt.workflows.checkpoint import SqlCheckpointer

REPO = Path(__file__).resolve().parents[2]
PROBLEM = generate("arithmetic", 1, seed=5, difficulty=1)[0]

# Shared by the test and the child it kills: the script, the tool, the solve.
COMMON = textwrap.dedent(r'''
    import json, sys, time
    from pathlib import Path
    from agentrt.core.config import load_settings
    from agentrt.llm.fake import FakeBackend
    from agentrt.runtime import Runtime

    def node(id, inputs=(), tool=None):
        d = {"id": id, "kind": "tool" if tool else "llm", "role": "expert",
             "instruction": "do your part", "inputs": list(inputs)}
        return {**d, "tool": tool} if tool else d

    DESIGN = json.dumps({"nodes": [node("calc", tool="python"), node("note"),
                                   node("fin", ["calc", "note"])], "final": "fin"})

    def backend(answer):
        return FakeBackend(rules=[
            (r"Reflect on the following problem", "Restated: an arithmetic expression."),
            (r"Design a workflow of experts", DESIGN),
            (r"Judge whether its final answer", '{"reason": "checked", "verdict": "yes"}'),
            (r"Expert: calc \([^)]*\), tool: python", '{"code": "print(1)"}'),
            (r"Expert: fin ", f"The tool printed {answer}.\nFinal answer: {answer}"),
            (r"Expert: note ", "a note on the method"),
        ], default=None)

    class Tool:
        name, description = "python", "Run a Python program."
        input_schema = {"type": "object", "required": ["code"],
                        "properties": {"code": {"type": "string"},
                                       "timeout_s": {"type": "number"}}}

        def __init__(self, answer, started=None):
            self.answer, self.started = answer, started

        def run(self, args):
            if self.started:  # the child's tool: say so, then hang until killed
                Path(self.started).touch()
                time.sleep(600)
            return {"stdout": self.answer + "\n", "stderr": "", "exit_code": 0,
                    "timed_out": False}

    def runtime(store, answer, started=None):
        return Runtime(load_settings(backend="fake", model="fake"), backend=backend(answer),
                       store=store, tools={"python": Tool(answer, started)})
''')
CHILD = COMMON + textwrap.dedent('''
    from agentrt.store import TraceStore
    url, answer, text, tags, started = sys.argv[1:6]
    runtime(TraceStore(url), answer, started).solve(text, mode="slow", tags=json.loads(tags))
''')
shared: dict = {}
exec(COMMON, shared)


def _kill_inside_the_tool(url, tmp_path, tags):
    script, started = tmp_path / "child.py", tmp_path / "tool-started"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), url, PROBLEM.answer, PROBLEM.text,
                              json.dumps(tags), str(started)], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    store = TraceStore(url)
    saver = SqlCheckpointer(store.engine)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            traces = store.list_traces(tags=tags)
            if started.exists() and traces and "note" in saved_outputs(saver, traces[0].id):
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("the child never reached its tool run")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        store.close()
    return traces[0].id


def _sft(store, root, name, tags):
    from datasets import load_from_disk

    record = build_dataset(store, BuildSpec(kind="sft", out=root / name, tags=tags,
                                            verified_only=False))
    return list(load_from_disk(record.path))


def test_a_resumed_tool_node_counts_each_call_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    killed_tags = {**problem_tags(PROBLEM), "case": "killed"}
    plain_tags = {**problem_tags(PROBLEM), "case": "plain"}
    killed = _kill_inside_the_tool(url, tmp_path, killed_tags)

    store = TraceStore(url)
    try:
        assert store.get_trace(killed).status == "interrupted"
        resumed = shared["runtime"](store, PROBLEM.answer).resume(killed)
        plain = shared["runtime"](store, PROBLEM.answer).solve(PROBLEM.text, mode="slow",
                                                               tags=plain_tags)
        assert (resumed.answer, resumed.status) == (PROBLEM.answer, "ok") == (plain.answer,
                                                                              plain.status)
        a, b = store.get_trace(killed), store.get_trace(plain.trace_id)
        assert (a.llm_calls, a.tool_runs, a.usage) == (b.llm_calls, b.tool_runs, b.usage)
        assert (resumed.llm_calls, resumed.usage) == (plain.llm_calls, plain.usage)

        every = store.get_trace(killed, superseded=True).steps
        stale = [(s.kind, s.name, s.node) for s in every if s.superseded]
        assert stale == [("llm", "tool_input", "calc")]  # the killed attempt's call
        calls = Counter((s.name, s.node) for s in a.steps if s.kind == "llm")
        assert calls == Counter((s.name, s.node) for s in b.steps if s.kind == "llm")
        assert calls[("expert", "note")] == 1  # finished inside the killed superstep: kept

        console = Console(record=True, width=200, emoji=False)
        render_trace(store.get_trace(killed, superseded=True), console)
        shown = console.export_text()
        assert "1 superseded step(s), not counted" in shown and "superseded (ok)" in shown

        rows = _sft(store, tmp_path, "killed", killed_tags)
        want = _sft(store, tmp_path, "plain", plain_tags)
        steps_of = lambda rs: Counter((r["step"], r["node"]) for r in rs)  # noqa: E731
        assert steps_of(rows) == steps_of(want) and len(rows) == a.llm_calls
    finally:
        store.close()


def test_superseded_steps_follow_the_saved_writes():
    from agentrt.store import StepRecord
    from agentrt.workflows.slow.graph import superseded_steps

    class Saver:
        def finished_tasks(self, thread_id):
            return {("", "d1"), ("execute:e1", "a1")}

    paths = {1: "design:d1", 2: "reflect:r1", 3: "execute:e1|n_a:a1", 4: "execute:e1|n_b:b1",
             5: "execute:e1", 6: None, 7: "execute:e0|n_a:a1", 8: "design:d1|inner:x1"}
    steps = [StepRecord(kind="llm", name="x", task=t, id=i) for i, t in paths.items()]
    steps.append(StepRecord(kind="llm", name="x", task="reflect:r1", id=9, superseded=True))
    # kept: finished tasks (1, 3), steps outside tasks (6), anything inside a finished task (8)
    assert superseded_steps(steps, Saver(), "t") == [2, 4, 5, 7]


@pytest.mark.parametrize("step", [0, 1, 2, 3])
def test_a_kill_between_a_tasks_writes_and_its_checkpoint_resumes(tmp_path, step):
    # The superstep's task saved its writes; the checkpoint after it never was. The snapshot
    # then names no next node, which is not a finished graph: the resume continues from the
    # saved writes and does not run the finished task again.
    store = TraceStore(f"sqlite:///{tmp_path / 'traces.db'}")
    rt = shared["runtime"](store, PROBLEM.answer)
    with killed_at_checkpoint(step):
        rt.solve(PROBLEM.text, mode="slow", tags={"kill": str(step)})
    [trace] = store.list_traces(tags={"kill": str(step)})
    assert trace.status == "interrupted"
    calls_before = len(rt.backend.requests)
    sol = rt.resume(trace.id)
    assert sol.status == "ok" and sol.answer == PROBLEM.answer
    calls = [(s.name, s.node) for s in store.get_trace(trace.id).steps if s.kind == "llm"]
    assert len(calls) == len(set(calls))  # no finished task's call made twice
    assert len(rt.backend.requests) > calls_before  # it went on, not straight to an empty end
    store.close()
