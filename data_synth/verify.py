"""Which problem a trace solved, and whether its answers are right: the ground truth of datasets.

A trace is tied to its problem by tags: `problem_id`, `family`, `grader` and `reference` (the
reference answer) are set by every synthesis path (`problem_tags`); evaluation runs tag
`eval_problem` and `eval_correct` instead. `judge_trace` turns a stored trace into a
`TraceJudge` that grades any answer that trace produced (the final one, a fast attempt, one
round of slow thinking) with the problem's grader, the same way the evaluation harness grades.

Sources: `synthetic=gold` traces are scripted from a known solution, `synthetic=teacher` ones
are a teacher model's solves that were graded correct, `synthetic=rejected` ones failed their
check and never count as verified; every other trace is a model's own solve ("model").
This module reads traces; it does not solve, store or build anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from agentrt.core.types import Problem
from agentrt.eval.graders import GRADERS
from agentrt.eval.harness import grade_answer
from agentrt.store import TraceRecord

__all__ = ["SYNTHETIC_TAG", "SOURCES", "problem_tags", "reference_for", "TraceJudge",
           "judge_trace", "grade_text"]

SYNTHETIC_TAG = "synthetic"
SOURCES = ("gold", "teacher", "model")
_TAG_LIMIT = 512


def problem_tags(problem: Problem) -> dict[str, str]:
    """Tags that tie a trace to `problem` (reference answers too long for a tag are left out)."""
    tags = {"problem_id": problem.id[:_TAG_LIMIT], "grader": problem.grader,
            "difficulty": str(problem.difficulty)}
    if problem.family:
        tags["family"] = problem.family[:_TAG_LIMIT]
    if problem.answer.strip() and len(problem.answer) <= _TAG_LIMIT:
        tags["reference"] = problem.answer
    return tags


def reference_for(trace: TraceRecord, problems: Mapping[str, Problem] | None = None
                  ) -> Problem | None:
    """The problem a trace solved, with its reference answer, or None when it cannot be known.

    Looked up by the trace's `problem_id` (or `eval_problem`) tag in `problems` first, then
    rebuilt from the trace's `reference` and `grader` tags.
    """
    tags = trace.tags
    pid = tags.get("problem_id") or tags.get("eval_problem")
    if problems and pid in problems:
        return problems[pid]
    ref, grader = tags.get("reference"), tags.get("grader")
    if ref and grader in GRADERS:
        return Problem(id=pid or trace.id, text=trace.problem, answer=ref, grader=grader,
                       family=tags.get("family", ""))
    return None


def grade_text(answer: str, problem: Problem) -> bool:
    """Whether an answer (extracted or free text) solves `problem`, graded as evaluation does."""
    return grade_answer(answer, problem)[1]


@dataclass
class TraceJudge:
    """Grades the answers of one trace.

    Attributes:
        trace: the trace (with steps).
        source: "gold", "teacher", "model", or "rejected" for a synthetic trace that failed.
        reference: the problem with its reference answer, when known.
        final_correct: whether the trace's final answer is right (None: cannot tell). Only a
            finished trace (status "ok") can be right.
    """

    trace: TraceRecord
    source: str
    reference: Problem | None
    final_correct: bool | None = None
    _cache: dict[str, bool | None] = field(default_factory=dict, repr=False)

    @property
    def verified(self) -> bool:
        """The final answer is right (and the trace is not a rejected synthetic one)."""
        return self.final_correct is True and self.source != "rejected"

    def correct(self, answer: str | None) -> bool | None:
        """Whether `answer` (produced somewhere in this trace) is right; None when unknown."""
        if answer is None or not answer.strip():
            return False
        if answer not in self._cache:
            self._cache[answer] = self._grade(answer)
        return self._cache[answer]

    def _grade(self, answer: str) -> bool | None:
        if self.reference is not None:
            return grade_text(answer, self.reference)
        same = answer.strip() == (self.trace.answer or "").strip()
        return self.final_correct if same else None


def judge_trace(trace: TraceRecord, problems: Mapping[str, Problem] | None = None) -> TraceJudge:
    """Work out a trace's source, reference and whether its final answer is right."""
    tag = trace.tags.get(SYNTHETIC_TAG, "")
    source = tag if tag in ("gold", "teacher", "rejected") else "model"
    judge = TraceJudge(trace=trace, source=source, reference=reference_for(trace, problems))
    if trace.status != "ok" or trace.answer is None:
        judge.final_correct = False
    elif judge.reference is not None:
        judge.final_correct = judge.correct(trace.answer)
    elif source in ("gold", "teacher"):
        judge.final_correct = True  # verified when it was made
    elif trace.tags.get("eval_correct") in ("0", "1"):
        judge.final_correct = trace.tags["eval_correct"] == "1"
    return judge
