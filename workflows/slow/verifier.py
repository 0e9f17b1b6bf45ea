"""A learned vote verifier: which of a tool expert's runs printed the right answer.

With `tool_votes` > 1 a tool expert runs the greedy call and sampled ones; majority voting picks
the most frequent printed answer. A small model writes many wrong programs that agree, and the
right one is often among them but alone. The verifier scores each run from features of its
answer and program that need no model call (how many runs agree with it, how much of the
problem's own numbers its program uses, whether the answer is a plausible quantity) with a
logistic regression fitted on the model's own graded runs of train problems
(`agentrt.training.verifier`), and the vote picks the answer whose best run scores highest.

    feats = vote_features(problem, answers, covered)
    pick = pick_verified(answers, feats, weights)

Weights are plain numbers by feature name (plus `bias`), carried in `Limits.vote_weights` (which
checks the names) and shipped with a model's settings; a feature the weights do not name
counts zero.
"""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction

from agentrt.core.config import VERIFIER_FEATURES

__all__ = ["FEATURES", "vote_features", "verifier_scores", "pick_verified"]

FEATURES = VERIFIER_FEATURES


def _value(answer: str) -> Fraction | None:
    try:
        return Fraction(answer)
    except (ValueError, ZeroDivisionError):
        return None


def vote_features(problem_numbers: set[str], answers: list[str | None],
                  covered: list[int]) -> list[dict[str, float] | None]:
    """Each run's features (None for a run that did not print an answer).

    Args:
        problem_numbers: the problem's numbers by value (`experts.numbers_in(problem)`).
        answers: each run's answer key (`experts.vote_key`), None where the run failed.
        covered: how many of the problem's numbers each run's program uses.
    """
    ok = [i for i, a in enumerate(answers) if a is not None]
    if not ok:
        return [None] * len(answers)
    counts = Counter(answers[i] for i in ok)
    most = max(covered[i] for i in ok)
    n_numbers = max(len(problem_numbers), 1)
    largest = max((abs(float(v)) for v in map(_value, problem_numbers) if v is not None),
                  default=0.0)
    out: list[dict[str, float] | None] = []
    for i, answer in enumerate(answers):
        if answer is None:
            out.append(None)
            continue
        value = _value(answer)
        whole = value is not None and value.denominator == 1
        short = value is not None and (value * 100).denominator == 1
        out.append({
            "share": counts[answer] / len(ok),
            "first": float(i == 0),
            "agrees_first": float(answers[0] == answer),
            "coverage": min(covered[i] / n_numbers, 1.0),
            "best_coverage": float(covered[i] == most),
            "integer": float(whole),
            "negative": float(value is not None and value < 0),
            "magnitude": math.log10(1 + abs(float(value))) / 6 if value is not None else 1.0,
            "scale": max(-1.0, min(1.0, math.log10((1 + abs(float(value))) / (1 + largest)) / 3))
            if value is not None else 1.0,
            "long_fraction": float(value is not None and not short),
            "given": float(answer in problem_numbers),
            "ok_share": len(ok) / len(answers),
        })
    return out


def verifier_scores(features: list[dict[str, float] | None],
                    weights: dict[str, float]) -> list[float | None]:
    """Each run's probability of being right under the logistic model `weights`."""
    scores: list[float | None] = []
    for f in features:
        if f is None:
            scores.append(None)
            continue
        z = weights.get("bias", 0.0) + sum(weights.get(k, 0.0) * v for k, v in f.items())
        scores.append(1 / (1 + math.exp(-max(min(z, 60.0), -60.0))))
    return scores


def pick_verified(answers: list[str | None], features: list[dict[str, float] | None],
                  weights: dict[str, float]) -> int:
    """Index of the run whose answer the verifier trusts most: the highest-scoring run (ties
    to the earliest, so the greedy call wins a tie)."""
    scores = verifier_scores(features, weights)
    ok = [i for i, s in enumerate(scores) if s is not None]
    best = max(scores[i] for i in ok)
    return next(i for i in ok if scores[i] == best)
