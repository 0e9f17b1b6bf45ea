"""Metrics of an evaluation run: accuracy with a Wilson interval, cost, time, and routing quality.

`compute_metrics(results)` summarises per-problem results (`ProblemResult`, from the harness)
overall, per task (family) and per path taken (fast or slow). Failed problems (an error instead
of an answer) count as wrong and are also counted apart. For `auto` runs the router is scored as
a classifier of "fast fails": a positive is a problem whose graded fast attempt was wrong, a
predicted positive is an escalation to slow thinking; problems sent slow without a fast attempt
have no known label and are counted as `unlabelled`.

This module is pure arithmetic over results: it runs, reads and writes nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

__all__ = ["wilson_interval", "GroupMetrics", "RouterMetrics", "RunMetrics", "compute_metrics",
           "group_metrics", "router_metrics"]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default).

    Example:
        >>> lo, hi = wilson_interval(8, 10)
        >>> round(lo, 3), round(hi, 3)
        (0.49, 0.943)
    """
    if n < 0 or correct < 0 or correct > n:
        raise ValueError(f"need 0 <= correct <= n, got correct={correct}, n={n}")
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class GroupMetrics(BaseModel):
    """Accuracy and cost of a group of problems."""

    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tokens_per_problem: float = 0.0
    tokens_per_solved: float | None = None  # all tokens spent over the problems solved; None if none
    llm_calls_per_problem: float = 0.0
    tool_runs_per_problem: float = 0.0
    latency_s_mean: float = 0.0
    latency_s_total: float = 0.0
    slow_fraction: float = 0.0


class RouterMetrics(BaseModel):
    """Escalation as a prediction that fast fails (auto runs)."""

    labelled: int
    unlabelled: int
    escalated: int
    true_positive: int
    false_positive: int
    false_negative: int
    true_negative: int
    precision: float | None = None
    recall: float | None = None
    fast_failure_rate: float | None = None


class RunMetrics(BaseModel):
    """All metrics of one run."""

    overall: GroupMetrics
    by_task: dict[str, GroupMetrics] = Field(default_factory=dict)
    by_path: dict[str, GroupMetrics] = Field(default_factory=dict)
    router: RouterMetrics | None = None
    wall_s: float | None = None
    problems_per_minute: float | None = None


def _get(r: Any, name: str, default: Any = None) -> Any:
    return r.get(name, default) if isinstance(r, dict) else getattr(r, name, default)


def group_metrics(results: Iterable[Any]) -> GroupMetrics:
    """Accuracy (with a 95% Wilson interval), tokens, calls, tool runs, latency, slow share."""
    rows = list(results)
    n = len(rows)
    correct = sum(1 for r in rows if _get(r, "correct"))
    lo, hi = wilson_interval(correct, n)
    pt = sum(int(_get(r, "prompt_tokens", 0) or 0) for r in rows)
    ct = sum(int(_get(r, "completion_tokens", 0) or 0) for r in rows)
    lat = [float(_get(r, "latency_s", 0.0) or 0.0) for r in rows]
    per = (lambda total: total / n) if n else (lambda total: 0.0)
    return GroupMetrics(
        n=n, correct=correct, accuracy=correct / n if n else 0.0, ci_low=lo, ci_high=hi,
        errors=sum(1 for r in rows if _get(r, "error")),
        prompt_tokens=pt, completion_tokens=ct, tokens_per_problem=per(pt + ct),
        tokens_per_solved=(pt + ct) / correct if correct else None,
        llm_calls_per_problem=per(sum(int(_get(r, "llm_calls", 0) or 0) for r in rows)),
        tool_runs_per_problem=per(sum(int(_get(r, "tool_runs", 0) or 0) for r in rows)),
        latency_s_mean=per(sum(lat)), latency_s_total=sum(lat),
        slow_fraction=per(sum(1 for r in rows if _get(r, "mode") == "slow")),
    )


def router_metrics(results: Iterable[Any]) -> RouterMetrics | None:
    """Precision and recall of escalating, over auto results whose fast attempt was graded."""
    rows = [r for r in results if _get(r, "requested_mode") == "auto" and not _get(r, "error")]
    if not rows:
        return None
    tp = fp = fn = tn = unlabelled = 0
    for r in rows:
        slow = _get(r, "mode") == "slow"
        fast_ok = _get(r, "fast_correct")
        if fast_ok is None:
            unlabelled += 1
        elif slow and not fast_ok:
            tp += 1
        elif slow:
            fp += 1
        elif not fast_ok:
            fn += 1
        else:
            tn += 1
    labelled = tp + fp + fn + tn
    return RouterMetrics(
        labelled=labelled, unlabelled=unlabelled,
        escalated=sum(1 for r in rows if _get(r, "mode") == "slow"),
        true_positive=tp, false_positive=fp, false_negative=fn, true_negative=tn,
        precision=tp / (tp + fp) if tp + fp else None,
        recall=tp / (tp + fn) if tp + fn else None,
        fast_failure_rate=(tp + fn) / labelled if labelled else None,
    )


def compute_metrics(results: Iterable[Any], wall_s: float | None = None) -> RunMetrics:
    """Metrics of a run overall, per task and per path taken, plus router quality for auto.

    Args:
        results: per-problem results (objects or dicts with the `ProblemResult` fields).
        wall_s: the run's wall-clock time, for throughput.
    """
    rows = list(results)
    by_task: dict[str, list[Any]] = defaultdict(list)
    by_path: dict[str, list[Any]] = defaultdict(list)
    for r in rows:
        by_task[_get(r, "family") or "all"].append(r)
        by_path[_get(r, "mode") or "none"].append(r)
    return RunMetrics(
        overall=group_metrics(rows),
        by_task={k: group_metrics(v) for k, v in sorted(by_task.items())},
        by_path={k: group_metrics(v) for k, v in sorted(by_path.items())},
        router=router_metrics(rows),
        wall_s=wall_s,
        problems_per_minute=(60.0 * len(rows) / wall_s) if wall_s else None,
    )
