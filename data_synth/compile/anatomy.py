"""A trace taken apart into its LLM calls, each marked as a good training target or not.

Every dataset compiler reads traces through `dissect`: it walks the steps in order and works
out, for each recorded LLM call, what it produced (an answer, a verdict, a design, a tool call)
and whether that reply is right to imitate:

- `fast_answer` (and each sample of `router_samples`): its answer passes the grader;
- `fast_check` / `judge`: its yes/no agrees with whether the answer it checked is right;
- `reflect`, `expert` and every other call of a slow round: the round's answer is right;
- `design` / `design_repair`: the design was accepted and its round's answer is right (a
  design the validator rejected is never a good target);
- `tool_input` / `tool_repair`: the call ran cleanly and its round's answer is right;
- `select`: the answer it selected is right;
- `tool_sample` (the sampled calls of a vote, `tool_votes`): each sample on its own, right when
  its run printed the reference answer (the `tool_vote` step lists each call's answer).

`ok` is True, False, or None when the trace does not say (no reference answer). Calls that
failed at the backend are left out, and so are superseded steps (calls of a task that a resumed
solve ran again), so that each call of a resumed solve is one row. This module reads records
only; it builds no rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from agentrt.data_synth.verify import TraceJudge
from agentrt.store import StepRecord
from agentrt.workflows.answers import extract_final_answer, parse_verdict
from agentrt.workflows.slow.toolcall import run_failure

__all__ = ["Call", "Round", "Anatomy", "dissect", "agrees"]


@dataclass
class Call:
    """One recorded LLM call and what its reply is worth as a training target."""

    step: StepRecord
    messages: list[dict[str, str]]
    reply: str
    ok: bool | None = None
    why: str = ""
    answer: str | None = None  # fast answers and final experts: the answer they gave
    verdict: str | None = None
    choices: list[tuple[str, str, bool | None]] = field(default_factory=list)  # text, answer, ok
    accepted: bool | None = None  # designs: passed validation; tool calls: ran cleanly

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def round(self) -> int:
        return self.step.round


@dataclass
class Round:
    """One round of slow thinking: its answer, the judge's verdict, whether it is right."""

    number: int
    answer: str | None = None
    verdict: str | None = None
    correct: bool | None = None
    spec: dict[str, Any] | None = None


@dataclass
class Anatomy:
    """A trace's calls, rounds and fast attempt, judged."""

    judge: TraceJudge
    calls: list[Call]
    rounds: dict[int, Round]
    fast_answer: str | None = None
    fast_correct: bool | None = None
    selected: str | None = None

    @property
    def trace(self) -> Any:
        return self.judge.trace


def agrees(verdict: str | None, correct: bool | None) -> bool | None:
    """Whether a yes/no verdict matches the truth (None when either is unknown)."""
    if correct is None:
        return None
    if verdict not in ("yes", "no"):
        return False
    return (verdict == "yes") == correct


def _messages(step: StepRecord) -> list[dict[str, str]]:
    # The hf backend sends role and content only; so do the rows.
    return [{"role": str(m.get("role")), "content": str(m.get("content", ""))}
            for m in step.inputs.get("messages") or [] if isinstance(m, dict)]


def _clean_run(step: StepRecord) -> bool:
    return step.status == "ok" and run_failure(SimpleNamespace(name=step.name),
                                               step.outputs) is None


def _scan(steps: list[StepRecord], anatomy: Anatomy) -> None:
    """First pass: answers, verdicts, rounds, and the fate of design and tool calls."""
    open_design: Call | None = None
    open_tool: dict[str, Call] = {}
    samples: dict[str, Call] = {}
    experts: dict[tuple[str, int], Call] = {}
    for step in steps:
        out = step.outputs or {}
        if step.kind == "llm" and step.status == "ok":
            call = Call(step=step, messages=_messages(step), reply=str(out.get("text", "")))
            anatomy.calls.append(call)
            if step.name in ("design", "design_repair"):
                open_design = call
            elif step.name in ("tool_input", "tool_repair"):
                call.accepted = False
                open_tool[step.node or ""] = call
            elif step.name in ("fast_check", "judge"):
                call.verdict = parse_verdict(call.reply)
            elif step.name == "expert":
                experts[(step.node or "", step.round)] = call
            elif step.name == "router_samples":
                texts = out.get("choices") or [call.reply]
                call.choices = [(str(t), extract_final_answer(str(t)), None) for t in texts]
            elif step.name == "tool_sample":
                samples[step.node or ""] = call
        elif step.kind == "decision" and step.name == "tool_vote":
            call = samples.pop(step.node or "", None)
            if call is not None:  # answers[0] is the greedy call's, the rest the samples'
                texts = call.step.outputs.get("choices") or [call.reply]
                answers = list(out.get("answers") or [])[1:]
                call.choices = [(str(t), str(a) if a is not None else "", None)
                                for t, a in zip(texts, answers)]
        elif step.kind == "decision" and step.name == "final_answer":
            final = experts.get((step.node or "", step.round))
            if final is not None:
                final.answer = str(out.get("answer", ""))
        elif step.kind == "decision":
            _decision(step, out, anatomy, open_design)
            if step.name in ("design_accepted", "design_rejected"):
                open_design = None
        elif step.kind == "tool" and (step.node or "") in open_tool:
            open_tool.pop(step.node or "").accepted = _clean_run(step)
        elif step.kind == "stage" and step.name == "workflow":
            anatomy.rounds.setdefault(step.round, Round(step.round)).answer = str(
                out.get("answer", ""))


def _decision(step: StepRecord, out: dict[str, Any], anatomy: Anatomy,
              open_design: Call | None) -> None:
    if step.name == "extract_answer" and anatomy.fast_answer is None:
        anatomy.fast_answer = str(out.get("answer", ""))
    elif step.name == "design_accepted" and open_design is not None:
        open_design.accepted = True
        anatomy.rounds.setdefault(step.round, Round(step.round)).spec = out.get("spec")
    elif step.name == "design_rejected" and open_design is not None:
        open_design.accepted = False
    elif step.name == "verdict" and step.round >= 1:
        anatomy.rounds.setdefault(step.round, Round(step.round)).verdict = out.get("verdict")
    elif step.name == "selection":
        anatomy.selected = str(out.get("answer", ""))


def _mark(call: Call, anatomy: Anatomy) -> None:
    """Second pass: is this reply a good target?"""
    judge, rnd = anatomy.judge, anatomy.rounds.get(call.round)
    round_ok = rnd.correct if rnd is not None else None
    if call.name == "fast_answer":
        call.ok, call.why = anatomy.fast_correct, "fast answer graded"
    elif call.name == "router_samples":
        call.choices = [(t, a, judge.correct(a)) for t, a, _ in call.choices]
        call.ok, call.why = None, "one call, several samples: graded per sample"
    elif call.name == "tool_sample":  # a sample that did not run cleanly is a wrong one
        call.choices = [(t, a, judge.correct(a)) for t, a, _ in call.choices]
        call.ok, call.why = None, "sampled tool calls: each graded by what its run printed"
    elif call.name == "fast_check":
        call.ok, call.why = agrees(call.verdict, anatomy.fast_correct), "check vs fast answer"
    elif call.name == "judge":
        call.ok, call.why = agrees(call.verdict, round_ok), "judge vs round answer"
    elif call.name == "select":
        call.ok, call.why = judge.correct(anatomy.selected), "selected answer graded"
    elif call.accepted is False:
        call.ok, call.why = False, ("design rejected by validation" if "design" in call.name
                                    else "tool call did not run cleanly")
    elif call.round >= 1:
        call.ok, call.why = round_ok, "round answer graded"
    else:
        call.ok, call.why = judge.final_correct, "final answer graded"


def dissect(judge: TraceJudge) -> Anatomy:
    """Take a judged trace (with steps) apart into calls marked good or bad targets."""
    anatomy = Anatomy(judge=judge, calls=[], rounds={})
    steps = sorted((s for s in judge.trace.steps if not s.superseded), key=lambda s: (s.id or 0))
    _scan(steps, anatomy)
    if anatomy.fast_answer is not None:
        anatomy.fast_correct = judge.correct(anatomy.fast_answer)
    for rnd in anatomy.rounds.values():
        rnd.correct = judge.correct(rnd.answer) if rnd.answer else False
    for call in anatomy.calls:
        if call.name == "fast_answer":
            call.answer = anatomy.fast_answer
        _mark(call, anatomy)
    return anatomy
