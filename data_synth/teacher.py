"""Teacher traces: gold solves of problems with a known solution program, and graded solves by a
teacher model, stored like any other trace.

Gold traces run the runtime's REAL fast and slow graphs, so every stored message is exactly what
the runtime would have sent: only the model is replaced, by `GoldBackend`, a scripted backend
whose replies are written from the problem's known solution (a reflection, a `WorkflowSpec`
with a python tool node and a reading expert, the solution program as the tool call, the final
answer, a "yes" judgement; for fast thinking a direct answer and a "yes" check). The program
really runs in the sandbox, and the final answer restates what it printed. Under a profile
whose python calls are one line (named arithmetic steps, then a print; the compact one), a
straight-line program is written in that form first (`agentrt.data_synth.inline`). A problem
from a worked-solution source (`agentrt.data_synth.worked`) answers fast with its own working. Each trace is then
checked: the calls made are the calls scripted, no design or tool call failed, every reply fits
the JSON schema the runtime sent with it, and the answer passes the problem's grader. A trace
that fails is re-tagged `synthetic=rejected` with the reason and never counts as verified.

Tags: `synthetic=gold` (or `teacher`), `problem_id`, `family`, `grader`, `reference`,
`difficulty`. With a teacher model (any backend), `teacher_traces` solves the problems for real
and keeps a trace as `synthetic=teacher` only when the grader accepts its answer; its solves
run on an executor (`agentrt.execute`: threads here, or Ray workers with runtimes of their own).
This module knows the runtime's stage names and reply formats, not how datasets are built.
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.config import Settings
from agentrt.core.errors import AgentrtError, BackendError, ConfigError
from agentrt.core.types import Problem
from agentrt.data_synth.inline import inline_program, one_line_steps
from agentrt.data_synth.schema_fit import schema_errors
from agentrt.data_synth.templates import render_text
from agentrt.data_synth.verify import SYNTHETIC_TAG, grade_text, problem_tags
from agentrt.execute import Executor, Finished, LocalExecutor
from agentrt.llm.base import BACKENDS
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.store import StepRecord, TraceRecord
from agentrt.workflows.answers import parse_json_object
from agentrt.workflows.fast import VERDICT_SCHEMA
from agentrt.workflows.profiles import get_profile, resolve_profile
from agentrt.workflows.slow.judge import JUDGE_SCHEMA
from agentrt.workflows.slow.toolbox import ToolBox
from agentrt.workflows.slow.toolcall import run_failure, tool_answer
from agentrt.workflows.spec import WorkflowSpec

__all__ = ["GOLD_MODEL_ID", "GOLD_SPEC", "GoldBackend", "TeacherReport", "gold_traces",
           "teacher_traces", "modes_for", "backend_structured", "gold_code"]

GOLD_MODEL_ID = "gold"
GOLD_SPEC = WorkflowSpec.model_validate({
    "nodes": [
        {"id": "step1", "kind": "tool", "tool": "python", "role": "python programmer",
         "instruction": "Compute the answer; print only it.", "inputs": []},
        {"id": "answer", "kind": "llm", "role": "math expert",
         "instruction": "Check the printed result; state it.",
         "inputs": ["step1"]},
    ],
    "final": "answer",
})
_SLOW_CALLS = ["reflect", "design", "tool_input", "expert", "judge"]
_FAST_CALLS = ["fast_answer", "fast_check"]
_FAILURES = {"design_rejected", "design_fallback", "tool_failed", "tool_call_unreadable"}
MODES = ("slow", "fast", "both")


class GoldBackend(FakeBackend):
    """The scripted teacher: replies in call order; a call past the script is an error."""

    name = "gold"

    def __init__(self, replies: Iterable[Any], *, structured: bool) -> None:
        super().__init__(script=replies, default=None, model_id=GOLD_MODEL_ID,
                         supports_json_schema=structured)


class TeacherReport(BaseModel):
    """What a teacher run stored and what it skipped or rejected, and why."""

    requested: int = 0
    stored: dict[str, int] = Field(default_factory=dict)
    skipped: dict[str, int] = Field(default_factory=dict)
    rejected: list[dict[str, str]] = Field(default_factory=list)
    trace_ids: list[str] = Field(default_factory=list)

    def count(self, bucket: dict[str, int], key: str) -> None:
        bucket[key] = bucket.get(key, 0) + 1


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"unknown teacher mode {mode!r}; choose slow, fast or both")


def modes_for(problem: Problem, mode: str, easy_max: int) -> list[str]:
    """Modes to run a problem in: `both` is slow for all, plus fast for easy ones."""
    _check_mode(mode)
    if mode == "both":
        return ["slow", "fast"] if problem.difficulty <= easy_max else ["slow"]
    return [mode]


def backend_structured(name: str) -> bool:
    """Whether the named backend enforces JSON schemas (what the runtime's prompts depend on)."""
    target = BACKENDS.get(name)
    if target is None:
        raise ConfigError(f"unknown backend {name!r}")
    if name == "fake":
        return False

    module, attr = target.split(":")
    return bool(getattr(getattr(importlib.import_module(module), attr), "supports_json_schema"))


def _json_reply(schema: dict[str, Any], values: dict[str, Any]) -> str:
    """A JSON object with keys in the schema's property order (as constrained decoding writes)."""
    return json.dumps({k: values[k] for k in schema["properties"]}, ensure_ascii=False)


def _verdict(schema: dict[str, Any], reason: str, structured: bool) -> str:
    if structured:
        return _json_reply(schema, {"reason": reason, "verdict": "yes"})
    return f"{reason}\nVerdict: yes"


def _slow_script(problem: Problem, profile: str, structured: bool,
                 seen: dict[str, str]) -> list[Any]:
    def result() -> str:
        if "result" not in seen:
            raise BackendError("the gold program produced no result to report")
        return seen["result"]

    return [
        render_text("gold/reflect", family=problem.family,
                    profile=get_profile(profile).templates),
        json.dumps(GOLD_SPEC.model_dump(exclude_none=True), ensure_ascii=False),
        json.dumps({"code": gold_code(problem, profile)}, ensure_ascii=False),
        lambda _req: render_text("gold/final", result=result()),
        lambda _req: _verdict(JUDGE_SCHEMA, render_text("gold/judge_reason", answer=result()),
                              structured),
    ]


def gold_code(problem: Problem, profile: str) -> str:
    """The tool call's code: the program as it is, except under a profile whose python calls
    are one line (`PromptProfile.one_line_python`, the compact one): the expression an
    arithmetic problem shows, copied as written, else the program's named steps joined by "; " (`one_line_steps`), else the program folded into
    one printed expression (`_expression`)."""
    if not get_profile(profile).one_line_python:
        return problem.meta["program"]
    shown = str(problem.meta.get("expression", "") or "")
    if shown and inline_program(f"print({shown})"):
        return _printed(shown)
    steps = one_line_steps(str(problem.meta.get("program", "") or ""))
    if steps:
        return steps
    expression = _expression(problem)
    return _printed(expression) if expression else problem.meta["program"]


def _expression(problem: Problem) -> str:
    """The one arithmetic expression that answers the problem: the one it shows, exactly as
    written (`/` stays `/`: copying is what a small model learns, and the divisions come out
    whole), else its straight-line program folded into one; "" when there is none."""
    shown = str(problem.meta.get("expression", "") or "")
    if shown and inline_program(f"print({shown})"):
        return shown
    folded = inline_program(str(problem.meta.get("program", "") or "")) or ""
    return folded[len("print("):-1] if folded.startswith("print(") else ""


def _printed(expression: str) -> str:
    """`print(<expression>)`, with a space before a leading parenthesis: `print((` is a single
    token to the small models' tokenizers, one they rarely see, while ` (` is the token the
    problem text itself has there, so the call is copied token for token."""
    return f"print( {expression})" if expression.startswith("(") else f"print({expression})"


def _fast_script(problem: Problem, structured: bool) -> list[Any]:
    # The working too, not a bare number: a worked source's own solution text, else the one
    # step of a generated problem (word problems' folded programs included).
    working = str(problem.meta.get("working", "") or "")
    answer = working or render_text("gold/fast_answer", expression=_expression(problem),
                                    answer=problem.answer)
    return [answer, _verdict(VERDICT_SCHEMA,
                             render_text("gold/check_reason", answer=problem.answer), structured)]


def _schema_problems(step: StepRecord) -> list[str]:
    schema = step.inputs.get("json_schema")
    if not schema:
        return []

    value = parse_json_object(str(step.outputs.get("text", "")))
    if value is None:
        return [f"{step.name}: the reply is not the JSON object its schema asks for"]
    return [f"{step.name}: {e}" for e in schema_errors(value, schema)]


def _check(trace: TraceRecord, problem: Problem, mode: str) -> str | None:
    """Why a gold trace is not a faithful, correct solve (None when it is)."""
    if trace.status != "ok" or trace.verdict != "yes":
        return f"the solve ended with status {trace.status!r} and verdict {trace.verdict!r}"
    calls = [s.name for s in trace.steps if s.kind == "llm"]
    expected = _SLOW_CALLS if mode == "slow" else _FAST_CALLS
    if calls != expected:
        return f"the workflow made the calls {calls}; the gold script has {expected}"
    failed = sorted({s.name for s in trace.steps if s.name in _FAILURES})
    if failed:
        return f"the workflow recorded {', '.join(failed)}"
    for step in trace.steps:
        if step.kind == "llm" and (errors := _schema_problems(step)):
            return "a reply does not fit its schema: " + "; ".join(errors[:3])
    if mode == "slow":
        runs = [s for s in trace.steps if s.kind == "tool"]
        if len(runs) != 1 or run_failure(SimpleNamespace(name=runs[0].name),
                                         runs[0].outputs) is not None:
            return "the solution program did not run cleanly once"
        if not grade_text(tool_answer(runs[0].outputs), problem):
            return "the solution program printed a wrong answer"
    if not grade_text(trace.answer or "", problem):
        return f"the final answer {trace.answer!r} fails the {problem.grader} grader"
    return None


def _gold_one(problem: Problem, mode: str, *, store: Any, settings: Settings, tools: Any,
              profile: str, structured: bool) -> tuple[str | None, str | None]:
    """Run one gold solve; (trace id, rejection reason or None)."""
    seen: dict[str, str] = {}
    script = (_slow_script(problem, profile, structured, seen) if mode == "slow"
              else _fast_script(problem, structured))

    def on_step(step: StepRecord) -> None:
        if step.kind == "tool" and step.status == "ok":
            seen["result"] = tool_answer(step.outputs)

    runtime = Runtime(settings, backend=GoldBackend(script, structured=structured), store=store,
                      tools=tools)
    tags = {**problem_tags(problem), SYNTHETIC_TAG: "gold"}
    try:
        solution = runtime.solve(problem.text, mode=mode, tags=tags, on_step=on_step)
    except AgentrtError as e:
        found = store.list_traces(limit=1, tags=tags)
        trace_id = found[0].id if found else None
        return trace_id, f"{e.code}: {e}"
    reason = _check(store.get_trace(solution.trace_id), problem, mode)
    return solution.trace_id, reason


def gold_traces(problems: Iterable[Problem], *, store: Any, settings: Settings,
                mode: str = "both", easy_max: int = 1, tools: Any = None,
                structured: bool | None = None,
                on_trace: Callable[[Problem, str, str | None, str | None], None] | None = None,
                ) -> TeacherReport:
    """Store gold traces for problems that carry a solution program (`meta["program"]`).

    Args:
        problems: the problems (typically from `agentrt.data_synth.generators.generate`).
        store: the trace store to write to.
        settings: the runtime settings the traces must match: the prompt profile is resolved
            for `settings.model` (the model to be trained) and the limits size every call.
        mode: "slow", "fast" or "both" (slow for all, fast for difficulty <= `easy_max`).
        easy_max: the highest difficulty that also gets a fast gold trace in "both".
        tools: the toolbox slow thinking may use (the registry's tools by default).
        structured: whether prompts and replies assume a schema-enforcing backend; by default
            whatever `settings.backend` does.
        on_trace: called with (problem, mode, trace id, rejection reason) after each solve.

    Returns:
        Counts of stored traces per mode, skipped problems and rejected traces (with reasons).

    Raises:
        ConfigError: unknown mode, or an unknown backend in `settings`.
    """
    _check_mode(mode)
    profile = resolve_profile(settings.model, settings.prompt_profile)
    gold_settings = settings.model_copy(update={"prompt_profile": profile})
    structured = backend_structured(settings.backend) if structured is None else structured
    toolbox = tools if tools is not None else ToolBox(strict=settings.sandbox_strict)
    report = TeacherReport()
    try:
        for problem in problems:
            report.requested += 1
            if not isinstance(problem.meta.get("program"), str) or not problem.meta["program"]:
                report.count(report.skipped, "no solution program")
                continue
            for m in modes_for(problem, mode, easy_max):
                trace_id, reason = _gold_one(problem, m, store=store, settings=gold_settings,
                                             tools=toolbox, profile=profile,
                                             structured=structured)
                _settle(store, report, problem, m, trace_id, reason)
                if on_trace is not None:
                    on_trace(problem, m, trace_id, reason)
    finally:
        if tools is None:
            toolbox.close()
    return report


def _settle(store: Any, report: TeacherReport, problem: Problem, mode: str,
            trace_id: str | None, reason: str | None) -> None:
    if reason is None and trace_id is not None:
        report.count(report.stored, mode)
        report.trace_ids.append(trace_id)
        return
    if trace_id is not None:
        store.tag(trace_id, **{SYNTHETIC_TAG: "rejected", "rejected_reason": reason[:500]})
    report.rejected.append({"problem_id": problem.id, "mode": mode, "trace_id": trace_id or "",
                            "reason": reason or "no trace"})


def _teacher_solve(runtime: Any, item: tuple[Problem, str], cancel: threading.Event
                   ) -> tuple[str | None, str | None]:
    """The executor's work function (module level, so it pickles for Ray workers): one solve
    by the teacher, graded; (trace id, rejection reason or None). Tagging is the driver's."""
    problem, mode = item
    tags = {**problem_tags(problem), SYNTHETIC_TAG: "teacher"}
    try:
        solution = runtime.solve(problem.text, mode=mode, tags=tags, cancel=cancel)
    except AgentrtError as e:  # the other mode of this problem may be solving beside it
        found = [t for t in runtime.store.list_traces(limit=10, tags=tags)
                 if t.requested_mode == mode]
        return (found[0].id if found else None), f"{e.code}: {e}"
    if not grade_text(solution.answer, problem):
        return solution.trace_id, f"the teacher's answer {solution.answer!r} is wrong"
    return solution.trace_id, None


def _outcome(done: Finished) -> tuple[str | None, str | None]:
    """A finished item's (trace id, reason); an item whose work failed outright (a lost
    worker, a bug) is a rejection without a trace."""
    if done.error is None:
        return done.result
    return None, f"{type(done.error).__name__}: {done.error}"


def teacher_traces(runtime: Any, problems: Iterable[Problem], *, mode: str = "both",
                   easy_max: int = 1,
                   on_trace: Callable[[Problem, str, str | None, str | None], None] | None = None,
                   executor: Executor | None = None) -> TeacherReport:
    """Solve problems with a teacher model and keep the solves the grader accepts.

    Every (problem, mode) solve is an item of `executor`; results are settled (tagged,
    counted, passed to `on_trace`) in problem and mode order, whatever order they finish in,
    so the report does not depend on the executor.

    Args:
        runtime: a `Runtime` whose backend is the teacher and whose settings' prompt profile is
            the one the trained model will use (set it explicitly: `auto` picks by the
            teacher's own name). With a Ray executor only its store is used here (tagging);
            the workers build their own runtimes with the executor's factory.
        problems: problems with reference answers.
        mode, easy_max: as for `gold_traces`.
        on_trace: called with (problem, mode, trace id, rejection reason) after each solve.
        executor: where the solves run (default: `LocalExecutor(1)`, one at a time here).

    Returns:
        The report; kept traces are tagged `synthetic=teacher`, the others `synthetic=rejected`.

    Raises:
        ConfigError: unknown mode.

    Example:
        >>> report = teacher_traces(Runtime(settings), problems, mode="fast",
        ...                         executor=LocalExecutor(4))  # doctest: +SKIP
    """
    _check_mode(mode)
    report = TeacherReport()
    items: list[tuple[Problem, str]] = []
    for problem in problems:
        report.requested += 1
        items += [(problem, m) for m in modes_for(problem, mode, easy_max)]

    def settle(index: int, outcome: tuple[str | None, str | None]) -> None:
        problem, m = items[index]
        _settle(runtime.store, report, problem, m, *outcome)
        if on_trace is not None:
            on_trace(problem, m, *outcome)

    executor = executor or LocalExecutor(1, thread_name_prefix="teacher")
    waiting: dict[int, tuple[str | None, str | None]] = {}
    settled = 0
    batch = executor.map(_teacher_solve, items, context=runtime)
    try:
        for done in batch:
            waiting[done.index] = _outcome(done)
            while settled in waiting:
                settle(settled, waiting.pop(settled))
                settled += 1
    except KeyboardInterrupt:  # settle whatever finished, so no wrong answer stays "teacher"
        waiting.update((done.index, _outcome(done)) for done in batch.interrupt())
        for index in sorted(waiting):
            settle(index, waiting[index])
        raise
    finally:
        batch.close()
    return report
