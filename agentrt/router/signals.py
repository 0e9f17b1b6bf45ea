"""Cheap signals of a fast attempt that a learned router may read.

`sample_agreement` draws k extra answers to the same fast prompt in one sampled call (n=k) and
returns the share that agree with the fast answer (numbers compared as numbers, other answers
as case- and space-folded text). It is a recorded LLM step like any other, so its tokens count
against the solve's budget. `answers_agree` is the comparison, exposed for training code.

Token log-probabilities would be a cheaper signal, but the chat backend protocol does not
return them, so they are not offered here.
"""

from __future__ import annotations

from typing import Any

from agentrt.core.types import SamplingParams
from agentrt.eval.numbers import numbers_close, parse_number
from agentrt.workflows.answers import extract_final_answer
from agentrt.workflows.prompts import render

__all__ = ["sample_agreement", "answers_agree", "AGREEMENT_TEMPERATURE"]

AGREEMENT_TEMPERATURE = 0.8


def _fold(text: str) -> str:
    return " ".join(text.split()).casefold().strip().rstrip(".")


def answers_agree(a: str, b: str) -> bool:
    """True when two extracted answers say the same thing (numerically where both are numbers)."""
    if not a.strip() or not b.strip():
        return False
    na, nb = parse_number(a), parse_number(b)
    if na is not None and nb is not None:
        return numbers_close(na, nb)
    return _fold(a) == _fold(b)


def sample_agreement(ctx: Any, problem: str, context: str | None, answer: str, k: int) -> float:
    """Share of `k` sampled fast answers that agree with `answer` (0.0 to 1.0).

    Args:
        ctx: the solve's context (backend, recorder, profile, limits).
        problem: the problem text.
        context: earlier conversation shown before the problem, if any.
        answer: the fast attempt's extracted answer.
        k: number of samples (one call with n=k).
    """
    text = f"{context}\n\n{problem}" if context else problem
    prompt = render("fast_answer", ctx.profile, problem=text)
    params = SamplingParams(max_tokens=ctx.limits.max_tokens_per_call,
                            temperature=AGREEMENT_TEMPERATURE, n=k)
    resp = ctx.recorder.llm(ctx.backend, prompt, name="router_samples", params=params)
    samples = [extract_final_answer(c.text) for c in resp.choices]
    agreement = sum(answers_agree(s, answer) for s in samples) / max(len(samples), 1)
    ctx.recorder.decision("agreement", {"answer": answer, "samples": samples},
                          {"agreement": agreement})
    return agreement
