"""GRPO's rewards: a sampled reply scored the way the runtime would have used it.

Two kinds of call are scored, each with its problem's reference answer and grader:

- `tool_input` (a python tool call): the reply is read as the runtime reads it
  (`agentrt.workflows.slow.toolcall.read_call`), checked against the JSON schema the runtime sent with
  the call (when it sent one), and the program is run in the project's process sandbox
  (`agentrt.tools.python_tool.PythonTool`; a model's code never runs in this process). It is *well
  formed* when the reply is the JSON call alone, fits the schema and the tool accepts it (no
  syntax error); it is *correct* when the run succeeds by the runtime's rule (`run_failure`)
  and the last printed line (`tool_answer`, what the final expert restates) passes the grader.
- `fast_answer` (a chain of thought): the answer is extracted as fast thinking extracts it
  (`extract_final_answer`) and graded; it is well formed when it has a "Final answer:" line.

Grading is `agentrt.data_synth.verify.grade_text`, the evaluation harness's own grading. The reward is

    w_correct * correct + w_format * well_formed - w_tokens * completion tokens / max tokens

`RuntimeReward` is the callable handed to TRL's `GRPOTrainer` (one reward function, so the
weights live in one place); it scores a batch on a small thread pool, so the sandbox runs of a
batch overlap, and logs the mean of each part. This module knows the runtime's reply formats and
graders, not TRL's training loop.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agentrt.core.errors import ToolInputError
from agentrt.core.types import Problem
from agentrt.data_synth.schema_fit import schema_errors
from agentrt.data_synth.verify import grade_text
from agentrt.tools.python_tool import PythonTool
from agentrt.workflows.answers import extract_final_answer
from agentrt.workflows.slow.toolcall import read_call, run_failure, tool_answer

__all__ = ["Score", "RuntimeReward", "score_reply", "KINDS"]

KINDS = ("tool_input", "fast_answer")
_FINAL_LINE = re.compile(r"final\s+answer\s*(?:is)?\s*[:：]\s*\S", re.I)
_JSON_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


@dataclass(frozen=True)
class Score:
    """How one reply fared: right, well formed, the answer graded, and why it failed."""

    correct: bool
    well_formed: bool
    answer: str = ""
    why: str = ""


def _schema(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, dict):
        return raw or None
    if isinstance(raw, str) and raw.strip():
        return json.loads(raw)
    return None


def _bare_json(text: str) -> bool:
    """The reply is one JSON object and nothing else (a ```json fence allowed): what a
    schema-constrained decoder yields, rather than a call found inside other text."""
    text = text.strip()
    fence = _JSON_FENCE.match(text)
    try:
        return isinstance(json.loads(fence.group(1) if fence else text), dict)
    except ValueError:
        return False


def _score_tool_call(text: str, problem: Problem, schema: dict[str, Any] | None, tool: Any,
                     timeout_s: float) -> Score:
    args, why = read_call(tool, text)
    if args is None:
        return Score(False, False, why=why)
    misfit = schema_errors(args, schema) if schema else []
    if not _bare_json(text):
        misfit.append("the call is not a bare JSON object")
    try:
        out = tool.run({**args, "timeout_s": timeout_s})
    except ToolInputError as e:  # a syntax error: the program never ran
        return Score(False, False, why=str(e))
    failure = run_failure(tool, out)
    answer = "" if failure else tool_answer(out)
    correct = bool(answer) and grade_text(answer, problem)
    why = failure or ("; ".join(misfit) if misfit else "")
    return Score(correct, not misfit, answer, why)


def _score_fast_answer(text: str, problem: Problem) -> Score:
    answer = extract_final_answer(text)
    formed = bool(_FINAL_LINE.search(text))
    correct = bool(answer) and grade_text(answer, problem)
    return Score(correct, formed, answer, "" if formed else "no 'Final answer:' line")


def score_reply(text: str, kind: str, problem: Problem, *, schema: Any = None,
                tool: Any = None, timeout_s: float = 5.0) -> Score:
    """Score one reply to a call of `kind` ("tool_input" or "fast_answer").

    Args:
        text: the sampled reply.
        kind: the runtime call it answers.
        problem: the problem, with its reference answer and grader.
        schema: the JSON schema the runtime sent with a tool call (a dict or its JSON text).
        tool: the python tool to run programs with (a sandboxed `PythonTool` by default).
        timeout_s: wall-clock limit of the program run.

    Raises:
        ValueError: an unknown kind.

    Example:
        >>> p = Problem(id="p", text="6*7?", answer="42", grader="numeric")
        >>> score_reply('{"code": "print(6*7)"}', "tool_input", p)  # doctest: +SKIP
        Score(correct=True, well_formed=True, answer='42', why='')
    """
    if kind == "fast_answer":
        return _score_fast_answer(text, problem)
    if kind == "tool_input":
        if tool is None:
            tool = PythonTool()
        return _score_tool_call(text, problem, _schema(schema), tool, timeout_s)
    raise ValueError(f"no reward for calls of kind {kind!r}; known: {', '.join(KINDS)}")


def _text(completion: Any) -> str:
    """A TRL completion (a string, or a list of messages whose last one is the reply)."""
    if isinstance(completion, str):
        return completion
    return str(completion[-1].get("content") or "") if completion else ""


class RuntimeReward:
    """The reward function given to `GRPOTrainer` (see the module docstring).

    TRL calls it with the batch's prompts, completions and completion token ids, plus the
    dataset's other columns: `step` (the call's kind), `reference`, `grader` and, optional,
    `json_schema` and `problem` (the problem's text).

    Args:
        w_correct, w_format, w_tokens: the reward's weights.
        max_tokens: the completion length the token penalty is a share of.
        timeout_s: wall-clock limit of one program run.
        workers: programs run concurrently.
        tool: the python tool (a sandboxed `PythonTool` by default).
    """

    __name__ = "runtime_reward"  # TRL logs rewards under the callable's name

    def __init__(self, *, w_correct: float = 1.0, w_format: float = 0.2, w_tokens: float = 0.1,
                 max_tokens: int = 128, timeout_s: float = 5.0, workers: int = 4,
                 tool: Any = None) -> None:
        if tool is None:
            tool = PythonTool()
        self.w_correct, self.w_format, self.w_tokens = w_correct, w_format, w_tokens
        self.max_tokens, self.timeout_s = max_tokens, timeout_s
        self.workers, self.tool = workers, tool

    @classmethod
    def from_settings(cls, settings: Any, tool: Any = None) -> "RuntimeReward":
        """The reward a `GRPOSettings` describes."""
        return cls(w_correct=settings.w_correct, w_format=settings.w_format,
                   w_tokens=settings.w_tokens, max_tokens=settings.max_completion_tokens,
                   timeout_s=settings.tool_timeout_s, workers=settings.sandbox_workers,
                   tool=tool)

    def scores(self, texts: list[str], kinds: list[str], problems: list[Problem],
               schemas: list[Any] | None = None) -> list[Score]:
        """Score a batch of replies, running their programs concurrently."""
        schemas = schemas or [None] * len(texts)

        def one(i: int) -> Score:
            return score_reply(texts[i], kinds[i], problems[i], schema=schemas[i],
                               tool=self.tool, timeout_s=self.timeout_s)

        if self.workers == 1 or len(texts) < 2:
            return [one(i) for i in range(len(texts))]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(texts))) as pool:
            return list(pool.map(one, range(len(texts))))

    def total(self, score: Score, tokens: int) -> float:
        """The reward of one scored reply of `tokens` tokens."""
        return (self.w_correct * score.correct + self.w_format * score.well_formed
                - self.w_tokens * min(tokens, self.max_tokens) / self.max_tokens)

    def __call__(self, prompts: list[Any], completions: list[Any],
                 completion_ids: list[list[int]], step: list[str], reference: list[str],
                 grader: list[str], json_schema: list[Any] | None = None,
                 problem: list[str] | None = None, log_metric: Any = None,
                 **_: Any) -> list[float]:
        texts = problem or ["(problem)"] * len(reference)
        problems = [Problem(id=f"grpo-{i}", text=t or "(problem)", answer=ref, grader=g)
                    for i, (t, ref, g) in enumerate(zip(texts, reference, grader, strict=True))]
        found = self.scores([_text(c) for c in completions], list(step), problems, json_schema)
        lengths = [len(ids) for ids in completion_ids]
        if log_metric is not None and found:
            n = len(found)
            log_metric("reward/correct", sum(s.correct for s in found) / n)
            log_metric("reward/well_formed", sum(s.well_formed for s in found) / n)
            log_metric("reward/tokens", sum(lengths) / n / self.max_tokens)
        return [self.total(s, t) for s, t in zip(found, lengths, strict=True)]
