"""Gold and teacher-model traces: the runtime's real graphs, a real sandboxed tool run, checks."""

import json
import re
import time

import pytest

from agentrt.core.config import load_settings
from agentrt.core.errors import ConfigError
from agentrt.eval.graders import grade
from agentrt.execute import LocalExecutor
from agentrt.llm.fake import FakeBackend
from agentrt.store import TraceStore
from agentrt.runtime import Runtime
from agentrt.core.types import Problem
from agentrt.data_synth.generators import generate
from agentrt.data_synth.inline import inline_program, one_line_steps
from agentrt.data_synth.teacher import GOLD_MODEL_ID, gold_traces, modes_for, teacher_traces
from agentrt.workflows.prompts import render, template_source
from agentrt.workflows.slow.numbers import listed_numbers
from agentrt.workflows.slow.toolcall import COMPACT_CODE_PATTERN


def _hf_settings(tmp_path):
    # The model the data is for: the embedded one (compact prompts, schema-enforcing backend).
    return load_settings(backend="hf", model="smollm2-135m", home=tmp_path)


def _hash(qualified: str) -> str:
    import hashlib

    profile, name = qualified.split("/")
    return hashlib.sha256(template_source(name, profile)[1].encode()).hexdigest()[:12]


def test_gold_slow_and_fast_traces_in_the_runtime_format(store, tmp_path):
    problems = [generate("arithmetic", 1, seed=5, difficulty=1)[0],
                generate("word", 1, seed=5, difficulty=2)[0]]
    report = gold_traces(problems, store=store, settings=_hf_settings(tmp_path), mode="both")
    assert report.stored == {"slow": 2, "fast": 1} and not report.rejected
    traces = [store.get_trace(t) for t in report.trace_ids]
    by_mode = {(t.tags["problem_id"], t.requested_mode): t for t in traces}
    for problem in problems:
        slow = by_mode[(problem.id, "slow")]
        assert slow.model_id == GOLD_MODEL_ID and slow.backend == "gold"
        assert slow.tags["synthetic"] == "gold" and slow.tags["family"] == problem.family
        assert slow.tags["reference"] == problem.answer and slow.meta["profile"] == "compact"
        assert (slow.status, slow.mode, slow.verdict) == ("ok", "slow", "yes")
        assert grade(slow.answer, problem).correct
        llm = [s for s in slow.steps if s.kind == "llm"]
        assert [s.name for s in llm] == ["reflect", "design", "tool_input", "expert", "judge"]
        assert all(s.template_hash == _hash(s.template) for s in llm)
        # The stored prompt is byte-identical to what the slow graph renders for this problem.
        reflect = render("reflect", "compact", problem=problem.text, context="", previous=[])
        assert llm[0].inputs["messages"] == [m.model_dump(exclude_none=True)
                                             for m in reflect.messages]
        design = next(s for s in slow.steps if s.name == "design_accepted")
        assert design.outputs["spec"]["nodes"][0]["tool"] == "python"
        tool = [s for s in slow.steps if s.kind == "tool"]
        assert len(tool) == 1 and tool[0].name == "python" and tool[0].outputs["exit_code"] == 0
        # The real program really ran: for the compact profile, the expression the problem
        # shows, or else the program's named steps on one line.
        shown = problem.meta.get("expression")
        expected = (f"print({shown})".replace("print((", "print( (") if shown
                    else one_line_steps(problem.meta["program"]))
        assert tool[0].inputs["code"] == expected
        assert re.match(COMPACT_CODE_PATTERN, expected)
        assert tool[0].outputs["stdout"].strip().splitlines()[-1] == slow.answer
        judge = json.loads(llm[-1].outputs["text"])  # JSON in the schema's key order
        assert list(judge) == ["reason", "verdict"] and judge["verdict"] == "yes"
    fast = by_mode[(problems[0].id, "fast")]
    llm = [s for s in fast.steps if s.kind == "llm"]
    assert [s.name for s in llm] == ["fast_answer", "fast_check"]
    sent = render("fast_answer", "compact", problem=problems[0].text)
    assert llm[0].inputs["messages"] == [m.model_dump(exclude_none=True) for m in sent.messages]
    assert llm[0].outputs["text"].endswith(f"Final answer: {problems[0].answer}")
    assert fast.verdict == "yes" and grade(fast.answer, problems[0]).correct


def test_gold_fast_answer_of_a_word_problem_shows_its_working_step(store, tmp_path):
    problem = generate("word", 1, seed=5, difficulty=2)[0]
    report = gold_traces([problem], store=store, settings=_hf_settings(tmp_path), mode="fast")
    trace = store.get_trace(report.trace_ids[0])
    expression = inline_program(problem.meta["program"])[len("print("):-1]
    answer = [s for s in trace.steps if s.name == "fast_answer"][0].outputs["text"]
    assert answer == f"{expression} = {problem.answer}.\nFinal answer: {problem.answer}"
    assert trace.verdict == "yes" and grade(trace.answer, problem).correct


def test_gold_tool_call_copies_the_shown_expression_with_its_divisions(store, tmp_path):
    problem = next(p for p in generate("arithmetic", 40, seed=3, difficulty=2)
                   if "/" in p.meta["expression"])
    report = gold_traces([problem], store=store, settings=_hf_settings(tmp_path), mode="slow")
    trace = store.get_trace(report.trace_ids[0])
    tool = [s for s in trace.steps if s.kind == "tool"][0]
    assert tool.inputs["code"] == f"print({problem.meta['expression']})"
    assert "//" not in tool.inputs["code"]
    assert float(tool.outputs["stdout"]) == float(problem.answer)  # whole, printed as a float
    assert trace.answer == tool.outputs["stdout"].strip() and grade(trace.answer, problem).correct


def test_gold_tool_call_spaces_a_leading_parenthesis(store, tmp_path):
    # `print((` is one rare token; `print( (` copies the problem's own ` (` token.
    problem = next(p for p in generate("arithmetic", 80, seed=4, difficulty=2)
                   if p.meta["expression"].startswith("("))
    report = gold_traces([problem], store=store, settings=_hf_settings(tmp_path), mode="slow")
    trace = store.get_trace(report.trace_ids[0])
    assert [s.inputs["code"] for s in trace.steps if s.kind == "tool"] == [
        f"print( {problem.meta['expression']})"]
    assert grade(trace.answer, problem).correct


def test_full_profile_without_schemas_writes_plain_verdicts(store, tmp_path):
    problem = generate("logic", 1, seed=2, difficulty=1)[0]
    settings = load_settings(backend="fake", model="a-large-model", home=tmp_path)
    report = gold_traces([problem], store=store, settings=settings, mode="slow")
    trace = store.get_trace(report.trace_ids[0])
    assert trace.meta["profile"] == "full"
    judge = [s for s in trace.steps if s.name == "judge"][0]
    assert judge.outputs["text"].endswith("Verdict: yes") and "json_schema" not in judge.inputs


def test_bad_gold_content_is_rejected_and_tagged(store, tmp_path):
    good = generate("arithmetic", 1, seed=9, difficulty=1)[0]
    # Without the shown expression, which the compact profile's tool call would copy instead.
    wrong = good.model_copy(update={"id": "wrong-program", "meta": {"program": "print(1)"}})
    long = good.model_copy(update={"id": "long-program", "meta": {
        "program": "import math\n# " + "x" * 500 + "\n" + good.meta["program"]}})
    bare = good.model_copy(update={"id": "no-program", "meta": {}})
    report = gold_traces([wrong, long, bare], store=store, settings=_hf_settings(tmp_path),
                         mode="slow")
    assert report.stored == {} and report.skipped == {"no solution program": 1}
    reasons = {r["problem_id"]: r["reason"] for r in report.rejected}
    assert "wrong answer" in reasons["wrong-program"]
    assert "a reply does not fit its schema: tool_input: $.code: " in reasons["long-program"]
    for r in report.rejected:
        assert store.get_trace(r["trace_id"]).tags["synthetic"] == "rejected"


def test_modes_and_bad_mode():
    easy, hard = (Problem(id=str(d), text="t", answer="1", grader="numeric", difficulty=d)
                  for d in (1, 3))
    assert modes_for(easy, "both", 1) == ["slow", "fast"] and modes_for(hard, "both", 1) == ["slow"]
    assert modes_for(hard, "fast", 1) == ["fast"]
    with pytest.raises(ConfigError, match="unknown teacher mode"):
        modes_for(easy, "medium", 1)


def test_teacher_model_traces_are_kept_only_when_graded_correct(store):
    right = Problem(id="r", text="What is 6 times 7?", answer="42", grader="numeric",
                    family="arithmetic")
    wrong = Problem(id="w", text="What is 5 times 5?", answer="25", grader="numeric")
    teacher = FakeBackend(rules=[(r"6 times 7", "6*7 = 42. Final answer: 42"),
                                 (r"5 times 5", "Final answer: 20"),
                                 (r"Proposed", "Verdict: yes")], model_id="teacher-7b")
    rt = Runtime(load_settings(backend="fake", model="teacher-7b", prompt_profile="compact"),
                 backend=teacher, store=store)
    report = teacher_traces(rt, [right, wrong], mode="fast")
    assert report.stored == {"fast": 1} and len(report.rejected) == 1
    kept = store.get_trace(report.trace_ids[0])
    assert kept.tags["synthetic"] == "teacher" and kept.model_id == "teacher-7b"
    assert kept.meta["profile"] == "compact"
    assert store.get_trace(report.rejected[0]["trace_id"]).tags["synthetic"] == "rejected"


def _times_run(path, executor):
    """Eight teacher solves (wrong for multiples of 3; the first problems answer slowest);
    the report as trace-id-free values, the settling order, and the finishing order."""
    finished, settled = [], []

    def answer(request):
        text = "\n".join(m.content for m in request.messages)
        a = int(re.search(r"What is (\d+) times 3", text).group(1))
        time.sleep(0.03 * (8 - a))
        finished.append(a)
        return f"Final answer: {3 * a + (a % 3 == 0)}"

    teacher = FakeBackend(rules=[(r"Proposed", "Verdict: yes"), (r"What is \d+ times 3", answer)],
                          model_id="teacher-7b")
    store = TraceStore(f"sqlite:///{path}")
    rt = Runtime(load_settings(backend="fake", model="teacher-7b", prompt_profile="compact"),
                 backend=teacher, store=store)
    problems = [Problem(id=f"p{a}", text=f"What is {a} times 3?", answer=str(3 * a),
                        grader="numeric") for a in range(1, 9)]
    report = teacher_traces(rt, problems, mode="fast", executor=executor,
                            on_trace=lambda p, m, t, r: settled.append(p.id))
    rejected = [store.get_trace(r["trace_id"]).tags["synthetic"] for r in report.rejected]
    summary = (report.requested, report.stored, report.skipped,
               [(r["problem_id"], r["mode"], r["reason"]) for r in report.rejected],
               [store.get_trace(t).tags["problem_id"] for t in report.trace_ids], rejected)
    store.close()
    return summary, settled, finished


def test_teacher_solves_on_workers_settle_in_problem_order(tmp_path):
    one, one_settled, _ = _times_run(tmp_path / "one.db", None)
    three, settled, finished = _times_run(tmp_path / "three.db", LocalExecutor(3))
    assert finished != sorted(finished)  # the workers finished out of order
    assert three == one  # yet the report is the sequential one
    assert settled == one_settled == [f"p{a}" for a in range(1, 9)]
    assert one[1] == {"fast": 6} and [r[0] for r in one[3]] == ["p3", "p6"]
    assert one[5] == ["rejected", "rejected"]


def test_straight_line_programs_fold_into_one_print():
    assert inline_program("a = 7 * 5\nb = 4 * 8\nt = a + b\nprint(140 - t)") == \
        "print(140 - (7 * 5 + 4 * 8))"
    assert inline_program("s = [48, 55, 62]\nprint(s[-1] + (s[-1] - s[-2]))") == \
        "print(62 + (62 - 55))"
    for program in ("import math\nprint(1)", "s = [1]\nprint(s[3])", "print(True or False)",
                    "x = f(2)\nprint(x)", "for i in []:\n    pass\nprint(1)", "print(1, 2)",
                    "def f(:"):
        assert inline_program(program) is None


def test_compact_gold_writes_word_programs_as_one_line_of_steps_and_full_keeps_them(
        store, tmp_path):
    problem = next(p for p in generate("word", 20, seed=3, difficulty=2)
                   if "\n" in p.meta["program"] and inline_program(p.meta["program"]))
    compact = gold_traces([problem], store=store, settings=_hf_settings(tmp_path), mode="slow")
    full = gold_traces([problem], store=store, mode="slow",
                       settings=load_settings(backend="hf", model="big", home=tmp_path))
    codes = [next(s for s in store.get_trace(r.trace_ids[0]).steps if s.kind == "tool")
             .inputs["code"] for r in (compact, full)]
    assert codes == [one_line_steps(problem.meta["program"]), problem.meta["program"]]
    assert "; print(" in codes[0]


def test_compact_numbers_gold_traces_show_the_numbers_and_the_compact_reflection(store, tmp_path):
    # The profile the shipped model is trained with: compact prompts, plus the numbers line in
    # its tool-call prompt, so the SFT rows teach exactly what the runtime will show.
    problem = generate("word", 1, seed=5, difficulty=2)[0]
    runs = {}
    for profile in ("compact", "compact-numbers"):
        settings = _hf_settings(tmp_path).model_copy(update={"prompt_profile": profile})
        report = gold_traces([problem], store=store, settings=settings, mode="slow")
        runs[profile] = {s.name: s for s in store.get_trace(report.trace_ids[0]).steps
                         if s.kind == "llm"}
    plain, numbered = runs["compact"], runs["compact-numbers"]
    listed = ", ".join(listed_numbers(problem.text))
    assert listed and f"\nNumbers: {listed}\n" in \
        numbered["tool_input"].inputs["messages"][-1]["content"]
    assert "Numbers:" not in plain["tool_input"].inputs["messages"][-1]["content"]
    assert numbered["reflect"].outputs["text"] == plain["reflect"].outputs["text"]
    assert numbered["tool_input"].template == "compact/tool_input"
