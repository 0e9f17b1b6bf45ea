"""Preference pairs: a right reply against a wrong one, for the same prompt.

Two kinds of pair, in TRL's conversational format (`prompt` messages, `chosen` and `rejected`
assistant messages):

- `answer`: calls with the very same prompt (the fast answer prompt of one problem, across
  traces and across the samples of a router-agreement call) whose answers the grader accepts
  and rejects;
- `design`: for one problem, a workflow design that led to a right answer against one that
  did not (its round's answer was wrong, or the validator rejected it). Designs of different
  solves were written after different reflections, so the pair takes the prompt of the
  rejected design's own call; a repaired design is paired with the rejected first attempt of
  the same round, which has exactly that prompt.

Every pair is checked before it is returned: the chosen reply is graded right, the rejected
one wrong, and they differ. A pair of two right or two wrong replies is a bug, and raises.
Pairs per prompt are capped, taken in a fixed order so rebuilds give the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import cycle
from typing import Any

from agentrt.data_synth.compile.anatomy import Anatomy, dissect
from agentrt.data_synth.verify import TraceJudge

__all__ = ["dpo_rows", "Candidate", "pair_up", "check_pair"]


@dataclass(frozen=True)
class Candidate:
    """A reply to a prompt and whether it is right."""

    prompt: tuple[tuple[str, str], ...]
    reply: str
    correct: bool
    trace_id: str
    step_id: int
    template: str
    problem: str
    family: str


def check_pair(chosen: Candidate, rejected: Candidate) -> None:
    """Raise AssertionError unless `chosen` is right, `rejected` is wrong and they differ."""
    if chosen.correct is not True or rejected.correct is not False:
        raise AssertionError(f"preference pair of a {'right' if chosen.correct else 'wrong'} "
                             f"and a {'right' if rejected.correct else 'wrong'} reply "
                             f"(traces {chosen.trace_id}, {rejected.trace_id})")
    if chosen.reply.strip() == rejected.reply.strip():
        raise AssertionError(f"preference pair with identical replies (trace {chosen.trace_id})")


def _prompt_key(messages: list[dict[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((m["role"], m["content"]) for m in messages)


def _candidate(anatomy: Anatomy, call: Any, reply: str, correct: bool,
               prompt: tuple[tuple[str, str], ...] | None = None) -> Candidate:
    trace = anatomy.trace
    return Candidate(prompt=prompt or _prompt_key(call.messages), reply=reply, correct=correct,
                     trace_id=trace.id, step_id=call.step.id or 0,
                     template=call.step.template or "", problem=trace.tags.get("problem_id")
                     or trace.problem, family=trace.tags.get("family", ""))


def _answers(anatomy: Anatomy) -> list[Candidate]:
    out = []
    for call in anatomy.calls:
        if call.name == "fast_answer" and call.ok is not None:
            out.append(_candidate(anatomy, call, call.reply, call.ok))
        for text, _answer, ok in call.choices:
            if ok is not None:
                out.append(_candidate(anatomy, call, text, ok))
    return out


def _designs(anatomy: Anatomy) -> tuple[list[Candidate], list[Candidate], list[tuple]]:
    """(good designs, bad first-attempt designs, same-round repair pairs) of one trace."""
    good, bad, repairs = [], [], []
    first_of_round: dict[int, Any] = {}
    for call in anatomy.calls:
        if call.name not in ("design", "design_repair"):
            continue
        rnd = anatomy.rounds.get(call.round)
        led_right = bool(call.accepted) and bool(rnd and rnd.correct)
        if call.name == "design":
            first_of_round[call.round] = call
        if led_right:
            good.append(_candidate(anatomy, call, call.reply, True))
            first = first_of_round.get(call.round)
            if call.name == "design_repair" and first is not None and first.accepted is False:
                repairs.append((_candidate(anatomy, call, call.reply, True,
                                           _prompt_key(first.messages)),
                                _candidate(anatomy, first, first.reply, False)))
        elif call.name == "design" and call.accepted is not None and rnd is not None \
                and (call.accepted is False or rnd.correct is False):
            bad.append(_candidate(anatomy, call, call.reply, False))
    return good, bad, repairs


def pair_up(right: list[Candidate], wrong: list[Candidate], cap: int) -> list[tuple]:
    """Pair each wrong reply with a right one in turn, at most `cap` pairs, skipping equal texts."""
    pairs: list[tuple[Candidate, Candidate]] = []
    if not right:
        return pairs
    goods = cycle(right)
    for bad in wrong:
        for _ in range(len(right)):
            good = next(goods)
            if good.reply.strip() != bad.reply.strip():
                pairs.append((good, bad))
                break
        if len(pairs) >= cap:
            break
    return pairs


def _row(kind: str, chosen: Candidate, rejected: Candidate, prompt_from: str) -> dict[str, Any]:
    check_pair(chosen, rejected)
    return {
        "prompt": [{"role": r, "content": c} for r, c in rejected.prompt],
        "chosen": [{"role": "assistant", "content": chosen.reply}],
        "rejected": [{"role": "assistant", "content": rejected.reply}],
        "kind": kind, "problem_id": chosen.problem, "family": chosen.family,
        "template": rejected.template, "prompt_from": prompt_from,
        "chosen_trace_id": chosen.trace_id, "chosen_step_id": chosen.step_id,
        "rejected_trace_id": rejected.trace_id, "rejected_step_id": rejected.step_id,
    }


def _unique(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop repeats of a pair (the same two calls), keeping the first."""
    seen: set[tuple] = set()
    out = []
    for r in rows:
        key = (r["chosen_trace_id"], r["chosen_step_id"], r["rejected_trace_id"],
               r["rejected_step_id"], r["chosen"][0]["content"], r["rejected"][0]["content"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def dpo_rows(judges: list[TraceJudge], *, cap: int = 4
             ) -> tuple[list[dict[str, Any]], list[str], dict[str, int]]:
    """Preference pairs from the traces: (rows, ids of traces used, skipped counts by reason)."""
    by_prompt: dict[tuple, list[Candidate]] = {}
    designs: dict[str, tuple[list[Candidate], list[Candidate]]] = {}
    rows: list[dict[str, Any]] = []
    skipped: dict[str, int] = {}
    for judge in judges:
        if judge.source == "rejected":
            skipped["rejected synthetic trace"] = skipped.get("rejected synthetic trace", 0) + 1
            continue
        anatomy = dissect(judge)
        for cand in _answers(anatomy):
            by_prompt.setdefault(cand.prompt, []).append(cand)
        good, bad, repairs = _designs(anatomy)
        key = judge.trace.tags.get("problem_id") or judge.trace.problem
        designs.setdefault(key, ([], []))
        designs[key][0].extend(good)
        designs[key][1].extend(bad)
        rows += [_row("design", c, r, "first attempt") for c, r in repairs[:cap]]
    for cands in by_prompt.values():
        right = [c for c in cands if c.correct]
        wrong = [c for c in cands if not c.correct]
        rows += [_row("answer", c, r, "shared") for c, r in pair_up(right, wrong, cap)]
    for good, bad in designs.values():
        rows += [_row("design", c, r, "rejected call") for c, r in pair_up(good, bad, cap)]
    rows = _unique(rows)
    used = sorted({r["chosen_trace_id"] for r in rows} | {r["rejected_trace_id"] for r in rows})
    return rows, used, skipped
