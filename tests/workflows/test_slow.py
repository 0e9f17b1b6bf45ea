"""Slow thinking end to end on the scripted backend, fake tools at the tool seam, a real SQLite store.

Covers: concurrent branches, design rejection and repair (cyclic, oversized, dangling input,
unknown tool), fallback design, tool repair and persistent tool failure, rounds and selection,
budgets, resume after an in-process interruption and after killing the solving process, the
schemas sent to constrained backends, and the drawn workflow. The embedded-model CLI test is
marked slow.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from helpers import FakeTool, crashed, ok, saved_outputs
from rich.console import Console

from agentrt.core.config import Limits, load_settings
from agentrt.core.errors import ConfigError, NotFoundError, ToolExecutionError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.workflows.checkpoint import SqlCheckpointer

REPO = Path(__file__).resolve().parents[2]
PROBLEM = "Compute 123*456 - 789"


def N(id, inputs=(), kind="llm", tool=None, role="expert", instruction="do your part"):
    d = {"id": id, "kind": kind, "role": role, "instruction": instruction, "inputs": list(inputs)}
    if tool:
        d["tool"] = tool
    return d


def spec(*nodes, final):
    return json.dumps({"nodes": list(nodes), "final": final})


CALC_DESIGN = spec(N("calc", kind="tool", tool="python", role="coder"),
                   N("fin", ["calc"], role="checker"), final="fin")


def scripted(design=CALC_DESIGN, *, judge='{"reason": "checked", "verdict": "yes"}', first=(),
             **kw):
    """Replies by stage; `first` rules win over the defaults."""
    return FakeBackend(rules=[
        *first,
        (r"Reflect on the following problem", "Restated: a product minus a number."),
        (r"Design a workflow of experts", design),
        (r"Judge whether its final answer", judge),
        (r"Candidate answers:", '{"reason": "second is right", "choice": 2}'),
        (r"Expert: \w+ \([^)]*\), tool: python", '{"code": "print(123*456 - 789)"}'),
        (r"Expert: fin ", "The tool printed 55299.\nFinal answer: 55299"),
        (r"Expert: ", "partial result"),
    ], **kw)


def runtime(store, backend, tools=None, **limits):
    settings = load_settings(backend="fake", model="fake", limits=Limits(**limits))
    return Runtime(settings, backend=backend, store=store,
                   tools={"python": FakeTool()} if tools is None else tools)


def steps(store, trace_id, name=None, node=None):
    return [s for s in store.get_trace(trace_id).steps
            if (name is None or s.name == name) and (node is None or s.node == node)]


def prompts(backend, marker):
    return [r.messages[-1].content for r in backend.requests if marker in r.messages[-1].content]


def test_slow_solve_end_to_end(store):
    tool = FakeTool()
    backend = scripted()
    sol = runtime(store, backend, {"python": tool}).solve(PROBLEM, mode="slow")
    assert (sol.answer, sol.mode, sol.verdict, sol.status) == ("55299", "slow", "yes", "ok")
    assert sol.tool_runs == 1 and sol.llm_calls == 5  # reflect, design, tool call, final, judge
    assert tool.calls[0]["code"] == "print(123*456 - 789)"
    assert tool.calls[0]["timeout_s"] == Limits().tool_timeout_s  # run limits are ours to set
    names = [s.name for s in store.get_trace(sol.trace_id).steps]
    for expected in ("reflect", "design", "design_accepted", "tool_input", "python", "node",
                     "expert", "final_answer", "workflow", "judge", "verdict", "selection"):
        assert expected in names
    # the final expert saw only its declared input (the tool's output), labelled by node id
    [final_prompt] = prompts(backend, "Expert: fin ")
    assert "[calc — coder]" in final_prompt and "55299" in final_prompt
    llm = [s for s in store.get_trace(sol.trace_id).steps if s.kind == "llm"]
    assert all(s.template and s.template_hash for s in llm)
    assert {s.template for s in llm} >= {"full/reflect", "full/design", "full/tool_input"}
    assert SqlCheckpointer(store.engine).count(sol.trace_id)["checkpoints"] == 0  # cleaned up


def test_run_slow_without_a_checkpointer(store):
    from agentrt.workflows.context import SolveContext
    from agentrt.workflows.recorder import Recorder
    from agentrt.workflows.slow import run_slow

    trace_id = store.start_trace(problem=PROBLEM, requested_mode="slow", model_id="fake",
                                 backend="fake")
    ctx = SolveContext(backend=scripted(), recorder=Recorder(store, trace_id, Limits()),
                       tools={"python": FakeTool()})
    result = run_slow(PROBLEM, None, ctx)
    assert (result.answer, result.rounds, result.mode) == ("55299", 1, "slow")


def test_three_branches_run_concurrently(store):
    delay = 0.5
    barrier = threading.Barrier(3, timeout=10)  # passes only if all three branches run at once

    def branch(name):
        def reply(request):
            barrier.wait()
            time.sleep(delay)
            return f"{name} done"
        return reply

    design = spec(N("a"), N("b"), N("c"), N("fin", ["a", "b", "c"]), final="fin")
    backend = scripted(design, first=[(rf"Expert: {n} ", branch(n)) for n in "abc"])
    sol = runtime(store, backend).solve(PROBLEM, mode="slow")
    assert sol.answer == "55299" and sol.status == "ok"
    [workflow] = steps(store, sol.trace_id, "workflow")
    assert workflow.latency_s < 0.75 * 3 * delay  # well under the sum of the branch delays
    spans = [(s.started_at.timestamp(), s.started_at.timestamp() + s.latency_s)
             for s in steps(store, sol.trace_id, "expert") if s.node in "abc"]
    assert len(spans) == 3 and max(a for a, _ in spans) < min(b for _, b in spans)  # overlap
    assert workflow.outputs["layers"] == [["a", "b", "c"], ["fin"]]


BAD_DESIGNS = {
    "cyclic": (spec(N("s"), N("a", ["s", "b"]), N("b", ["a"]), N("fin", ["b"]), final="fin"),
               "cycle"),
    "oversized": (spec(*[N(f"n{i}") for i in range(3)], N("fin", ["n0", "n1", "n2"]),
                       final="fin"), "the limit is 3"),
    "dangling": (spec(N("a"), N("fin", ["a", "ghost"]), final="fin"), "'ghost', which is not"),
    "unknown_tool": (spec(N("calc", kind="tool", tool="calculator"), N("fin", ["calc"]),
                          final="fin"), "unknown tool 'calculator'"),
}


@pytest.mark.parametrize("case", sorted(BAD_DESIGNS))
def test_bad_designs_are_rejected_and_repaired(store, case):
    bad, message = BAD_DESIGNS[case]
    backend = scripted(bad, first=[(r"was rejected before it could run", CALC_DESIGN)])
    sol = runtime(store, backend, max_nodes=3).solve(PROBLEM, mode="slow")
    assert sol.answer == "55299" and sol.status == "ok"
    [rejected] = steps(store, sol.trace_id, "design_rejected")
    assert rejected.status == "failed" and any(message in e for e in rejected.outputs["errors"])
    [repair_prompt] = prompts(backend, "was rejected before it could run")
    assert message in repair_prompt  # the model is shown what was wrong
    [accepted] = steps(store, sol.trace_id, "design_accepted")
    assert accepted.inputs["attempt"] == 2 and accepted.outputs["spec"]["final"] == "fin"
    assert [s.name for s in steps(store, sol.trace_id) if s.kind == "llm"][:3] == \
        ["reflect", "design", "design_repair"]


def test_design_that_never_validates_falls_back(store):
    bad = BAD_DESIGNS["dangling"][0]
    backend = scripted(bad, first=[(r"was rejected before it could run", bad),
                                   (r"Expert: solver ", "Direct work.\nFinal answer: 55299")])
    sol = runtime(store, backend, max_repairs=1).solve(PROBLEM, mode="slow")
    assert sol.answer == "55299"
    assert len(steps(store, sol.trace_id, "design_rejected")) == 2  # 1 + max_repairs attempts
    [fallback] = steps(store, sol.trace_id, "design_fallback")
    assert fallback.outputs["spec"]["final"] == "solver"


def test_tool_failure_is_repaired(store):
    tool = FakeTool(crashed("NameError: name 'x' is not defined"), ok("55299\n"))
    backend = scripted(first=[(r"It failed with", '{"code": "x = 123*456 - 789\\nprint(x)"}')])
    sol = runtime(store, backend, {"python": tool}).solve(PROBLEM, mode="slow")
    assert sol.answer == "55299" and sol.tool_runs == 2
    [repair] = prompts(backend, "It failed with")
    assert "NameError: name 'x' is not defined" in repair and "print(123*456 - 789)" in repair
    [node] = steps(store, sol.trace_id, "node", node="calc")
    assert node.status == "ok" and node.outputs["attempts"] == 2
    assert [s.name for s in steps(store, sol.trace_id, node="calc") if s.kind == "llm"] == \
        ["tool_input", "tool_repair"]


def test_persistent_tool_failure_is_recorded_as_failed(store):
    tool = FakeTool(ToolExecutionError("sandbox: memory limit exceeded"))
    backend = scripted(first=[(r"It failed with", '{"code": "print(1)"}')])
    sol = runtime(store, backend, {"python": tool}, max_repairs=2).solve(PROBLEM, mode="slow")
    assert len(tool.calls) == 3  # one call and max_repairs repairs, then it gives up
    [failed] = steps(store, sol.trace_id, "tool_failed")
    assert failed.status == "failed" and "memory limit exceeded" in failed.error
    [node] = steps(store, sol.trace_id, "node", node="calc")
    assert node.status == "failed"
    [workflow] = steps(store, sol.trace_id, "workflow")
    assert workflow.status == "failed" and workflow.outputs["nodes"]["calc"] == "failed"
    # the reader is told the tool failed; nothing pretends to be its output
    [final_prompt] = prompts(backend, "Expert: fin ")
    assert "FAILED" in final_prompt and "memory limit exceeded" in final_prompt
    assert all(s.status == "failed" for s in steps(store, sol.trace_id, "python"))


def test_no_verdict_starts_a_new_round_then_selects(store):
    answers = iter(["Final answer: 100", "Final answer: 55299"])
    backend = scripted(judge='{"reason": "not verified", "verdict": "no"}',
                       first=[(r"Expert: fin ", lambda r: next(answers))])
    sol = runtime(store, backend, max_rounds=2).solve(PROBLEM, mode="slow")
    assert sol.answer == "55299" and sol.verdict == "no"
    assert [s.round for s in steps(store, sol.trace_id, "reflect")] == [1, 2]
    # the second round's reflection knows the first answer was judged wrong
    second_reflect = prompts(backend, "Reflect on the following problem")[1]
    assert "attempt 1 answered 100" in second_reflect and "not verified" in second_reflect
    [select] = steps(store, sol.trace_id, "selection")
    assert select.outputs == {"answer": "55299", "round": 2, "how": "model choice"}


def test_budgets_stop_runaway_solves(store):
    backend = scripted(judge='{"reason": "never satisfied", "verdict": "no"}')
    sol = runtime(store, backend, max_rounds=10, max_llm_calls=12).solve(PROBLEM, mode="slow")
    assert sol.status == "budget_exceeded:llm_calls" and sol.llm_calls == 12
    assert sol.answer == "55299"  # the best answer found before the budget ran out
    assert store.get_trace(sol.trace_id).status == "budget_exceeded:llm_calls"
    assert SqlCheckpointer(store.engine).count(sol.trace_id)["checkpoints"] == 0


@pytest.mark.parametrize("limits, which", [
    ({"max_tool_runs": 2}, "tool_runs"),
    ({"max_total_tokens": 400}, "tokens"),
    ({"max_wall_s": 0.3}, "wall_time"),
])
def test_each_budget_names_itself(store, limits, which):
    backend = scripted(judge='{"reason": "no", "verdict": "no"}', delay_s=0.05)
    sol = runtime(store, backend, max_rounds=10, **limits).solve(PROBLEM, mode="slow")
    assert sol.status == f"budget_exceeded:{which}"


def _interrupt_once(store, node, after):
    """A reply that stops the process the first time, once `after` has saved its result."""
    fired = []

    def reply(request):
        if not fired:
            fired.append(1)
            saver, deadline = SqlCheckpointer(store.engine), time.monotonic() + 20
            trace_id = store.list_traces()[0].id
            while after not in saved_outputs(saver, trace_id) and time.monotonic() < deadline:
                time.sleep(0.02)
            raise KeyboardInterrupt  # the process is stopped mid-graph
        return f"{node} done"
    return reply


def test_interrupted_solve_resumes_without_repeating_finished_nodes(store):
    design = spec(N("a"), N("b", ["a"]), N("c", ["a"]), N("fin", ["b", "c"]), final="fin")
    backend = scripted(design, first=[(r"Expert: c ", _interrupt_once(store, "c", after="b")),
                                      (r"Expert: b ", "b done")])
    rt = runtime(store, backend)
    with pytest.raises(KeyboardInterrupt):
        rt.solve(PROBLEM, mode="slow")
    [trace] = store.list_traces()
    assert trace.status == "interrupted"

    sol = runtime(store, backend).resume(trace.id[:10])
    assert (sol.trace_id, sol.answer, sol.status) == (trace.id, "55299", "ok")
    llm = [(s.name, s.node) for s in steps(store, trace.id) if s.kind == "llm"]
    for once in [("reflect", None), ("design", None), ("expert", "a"), ("expert", "b"),
                 ("expert", "c"), ("expert", "fin"), ("judge", None)]:
        assert llm.count(once) == 1, (once, llm)
    assert store.get_trace(trace.id).meta["resumes"] == 1
    assert sol.llm_calls == len(llm)  # budgets count both runs
    with pytest.raises(ConfigError, match="already finished"):
        runtime(store, backend).resume(trace.id)


def test_resume_refuses_what_it_cannot_resume(store):
    rt = runtime(store, scripted())
    with pytest.raises(NotFoundError):
        rt.resume("0123456789abcdef")
    fast = store.start_trace(problem=PROBLEM, requested_mode="fast", model_id="fake", backend="fake")
    store.finish_trace(fast, answer=None, status="interrupted", mode=None)
    with pytest.raises(ConfigError, match="no slow-thinking checkpoint"):
        rt.resume(fast)
    other = store.start_trace(problem=PROBLEM, requested_mode="slow", model_id="big", backend="x")
    with pytest.raises(ConfigError, match="still running .*owner"):
        rt.resume(other)  # this process runs it: its lease is held
    store.finish_trace(other, answer=None, status="interrupted", mode=None)
    with pytest.raises(ConfigError, match="solved by 'big'"):
        rt.resume(other)


CHILD = textwrap.dedent("""
    import json, sys, time
    from agentrt.core.config import Limits, load_settings
    from agentrt.llm.fake import FakeBackend
    from agentrt.runtime import Runtime
    from agentrt.store import TraceStore

    def spec(*nodes, final):
        return json.dumps({"nodes": list(nodes), "final": final})

    def N(id, inputs=()):
        return {"id": id, "kind": "llm", "role": "expert", "instruction": "part", "inputs": list(inputs)}

    design = spec(N("a"), N("b"), N("slow"), N("fin", ["a", "b", "slow"]), final="fin")
    backend = FakeBackend(rules=[
        (r"Reflect on the following problem", "Restated."),
        (r"Design a workflow of experts", design),
        (r"Expert: slow ", lambda r: time.sleep(600) or "never"),
        (r"Expert: ", "done"),
    ])
    rt = Runtime(load_settings(backend="fake", model="fake"), backend=backend,
                 store=TraceStore(sys.argv[1]), tools={})
    rt.solve("Compute 123*456 - 789", mode="slow")
""")


def test_killed_process_resumes_from_its_checkpoint(store, tmp_path):
    url = f"sqlite:///{tmp_path / 'traces.db'}"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen([sys.executable, str(script), url], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    saver = SqlCheckpointer(store.engine)
    try:
        deadline = time.monotonic() + 60
        trace_id = None
        while time.monotonic() < deadline:
            traces = store.list_traces()
            trace_id = traces[0].id if traces else None
            if trace_id and {"a", "b"} <= saved_outputs(saver, trace_id):
                break
            assert child.poll() is None, child.communicate()
            time.sleep(0.1)
        else:
            pytest.fail("the child never finished its fast branches")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    killed = store.get_trace(trace_id)  # nobody finished it, and its owner is gone
    assert (killed.status, killed.orphaned, killed.finished_at) == ("interrupted", True, None)

    backend = FakeBackend(rules=[(r"Judge whether", '{"reason": "ok", "verdict": "yes"}'),
                                 (r"Expert: fin ", "Final answer: 55299"),
                                 (r"Expert: ", "done")], default=None)
    sol = runtime(store, backend, tools={}).resume(trace_id)
    assert sol.answer == "55299" and sol.status == "ok"
    resumed = [r.messages[-1].content.split("\n")[0] for r in backend.requests]
    assert resumed == ["Expert: slow (expert)", "Expert: fin (expert)", resumed[-1]]
    assert not any("Reflect on" in p or "Expert: a " in p for p in resumed)
    nodes = [s.node for s in steps(store, trace_id, "node")]
    assert sorted(nodes) == ["a", "b", "fin", "slow"]  # each node finished exactly once


def test_structured_backend_gets_schemas(store):
    backend = scripted()
    backend.supports_json_schema = True
    runtime(store, backend).solve(PROBLEM, mode="slow")
    by_marker = {m: next(r for r in backend.requests if m in r.messages[-1].content)
                 for m in ("Design a workflow", "tool: python", "Judge whether")}
    design_schema = by_marker["Design a workflow"].json_schema
    assert design_schema["properties"]["nodes"]["items"]["anyOf"]
    assert by_marker["tool: python"].json_schema["required"] == ["code"]
    assert by_marker["Judge whether"].json_schema["properties"]["verdict"]["enum"] == ["yes", "no"]
    assert next(r for r in backend.requests if "Reflect on" in r.messages[-1].content).json_schema is None


def test_compact_profile_uses_fixed_ids_and_short_prompts(store):
    design = spec(N("step1", kind="tool", tool="python"), N("step2"),
                  N("answer", ["step1", "step2"]), final="answer")
    backend = FakeBackend(rules=[
        (r"Design a team", design),
        (r"Is the answer correct", '{"verdict": "yes", "reason": "fine"}'),
        (r"tool: python", '{"code": "print(123*456 - 789)"}'),
        (r"Expert: answer", "123*456 - 789 = 55299\nExpert: answer\nProblem: invented"),
        (r".", "short note"),
    ], supports_json_schema=True)
    settings = load_settings(backend="fake", model="fake", prompt_profile="compact")
    rt = Runtime(settings, backend=backend, store=store, tools={"python": FakeTool()})
    sol = rt.solve(PROBLEM, mode="slow")
    assert (sol.answer, sol.verdict) == ("55299", "yes")  # cut at the invented prompt
    templates = {s.template for s in steps(store, sol.trace_id) if s.kind == "llm"}
    assert templates == {"compact/reflect", "compact/design", "compact/tool_input",
                         "compact/expert", "compact/judge"}
    design_request = next(r for r in backend.requests if "Design a team" in r.messages[-1].content)
    shapes = design_request.json_schema["anyOf"]  # one document shape per node count
    assert all(d["properties"]["final"] == {"const": "answer"} for d in shapes)
    judge_request = next(r for r in backend.requests if "Is the answer" in r.messages[-1].content)
    assert list(judge_request.json_schema["properties"]) == ["verdict", "reason"]
    expert = next(r for r in backend.requests if "Expert: answer" in r.messages[-1].content)
    assert "\nExpert:" in expert.params.stop


@pytest.mark.parametrize("profile", ["compact", "compact-numbers"])
def test_compact_numbers_profile_lists_the_problems_numbers_in_tool_prompts(store, profile):
    design = spec(N("step1", kind="tool", tool="python"), N("answer", ["step1"]), final="answer")
    backend = FakeBackend(rules=[
        (r"Design a team", design),
        (r"Is the answer correct", '{"verdict": "yes", "reason": "fine"}'),
        (r"tool: python", '{"code": "print(1,250 + 8)"}'),  # a syntax slip: one repair
        (r"Expert: answer", "1258"),
        (r".", "short note"),
    ], supports_json_schema=True)
    settings = load_settings(backend="fake", model="fake", prompt_profile=profile,
                             limits=Limits(max_repairs=1, max_rounds=1))
    tool = FakeTool(crashed("TypeError: can only concatenate"), ok("1258\n"))
    rt = Runtime(settings, backend=backend, store=store, tools={"python": tool})
    sol = rt.solve("I had $1,250 and found eight more dollars. How much now?", mode="slow")
    prompts = {s.name: s.inputs["messages"][-1]["content"] for s in steps(store, sol.trace_id)
               if s.name in ("tool_input", "tool_repair")}
    assert set(prompts) == {"tool_input", "tool_repair"}
    for text in prompts.values():
        listed = [line for line in text.splitlines() if line.startswith("Numbers:")]
        assert listed == (["Numbers: 1250, 8"] if profile == "compact-numbers" else [])
    other = [s for s in steps(store, sol.trace_id) if s.kind == "llm" and s.name == "reflect"]
    assert "Numbers:" not in other[0].inputs["messages"][-1]["content"]  # tool prompts only


def test_trace_show_draws_the_workflow(store):
    tool = FakeTool(ToolExecutionError("boom"))
    design = spec(N("a"), N("calc", kind="tool", tool="python"), N("fin", ["a", "calc"]),
                  final="fin")
    sol = runtime(store, scripted(design), {"python": tool}, max_repairs=0).solve(PROBLEM, mode="slow")
    from agentrt.cli.render import render_trace

    console = Console(record=True, width=140)
    render_trace(store.get_trace(sol.trace_id), console)
    text = console.export_text()
    assert "round 1" in text and "layer 1 (parallel)" in text and "★ final" in text
    assert "✗ calc" in text and "✓ a" in text and "← a, calc" in text


@pytest.mark.slow
def test_embedded_model_slow_solve_through_the_cli(tmp_path, embedded_home):
    db = tmp_path / "traces.db"
    env = {**os.environ, "AGENTRT_HOME": str(embedded_home),
           "AGENTRT_DATABASE_URL": f"sqlite:///{db}", "AGENTRT_BACKEND": "hf",
           "AGENTRT_MODEL": "smollm2-135m", "AGENTRT_LIMIT_MAX_ROUNDS": "1",
           "AGENTRT_LIMIT_MAX_TOKENS_PER_CALL": "200", "AGENTRT_LIMIT_MAX_REPAIRS": "1",
           "AGENTRT_LIMIT_MAX_LLM_CALLS": "12"}
    cli = [sys.executable, "-m", "agentrt.cli"]
    done = subprocess.run([*cli, "solve", PROBLEM, "--mode", "slow", "--json"], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    sol = json.loads(done.stdout)
    assert sol["mode"] == "slow" and sol["status"].split(":")[0] in ("ok", "budget_exceeded")
    with TraceStore(f"sqlite:///{db}") as s:
        trace = s.get_trace(sol["trace_id"])
    names = [st.name for st in trace.steps]
    [accepted] = [st for st in trace.steps if st.name == "design_accepted"]
    assert accepted.outputs["schema_enforced"] is True
    ran = [st for st in trace.steps if st.kind == "tool"]
    assert ran and all("exit_code" in st.outputs or st.error for st in ran)
    assert any("exit_code" in st.outputs for st in ran)  # a program really ran in the sandbox
    node_ids = {n["id"] for n in accepted.outputs["spec"]["nodes"]}
    assert {st.node for st in trace.steps if st.name == "node"} == node_ids
    for stage in ("reflect", "design", "workflow"):
        assert stage in names
    shown = subprocess.run([*cli, "traces", "show", trace.id], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0 and "round 1" in shown.stdout
