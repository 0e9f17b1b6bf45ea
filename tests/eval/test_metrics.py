"""Metrics: Wilson intervals, group sums, router precision/recall, per task and per path."""

import pytest

from agentrt.eval.metrics import compute_metrics, group_metrics, router_metrics, wilson_interval
from agentrt.eval.runs import ProblemResult


def result(i, correct, mode="fast", family="t", requested="fast", fast_correct=None, error=None,
           pt=10, ct=5, calls=2, tools=0, lat=1.0):
    return ProblemResult(index=i, problem_id=f"p{i}", family=family, grader="numeric",
                         reference="1", requested_mode=requested, correct=correct, mode=mode,
                         fast_correct=fast_correct, error=error, prompt_tokens=pt,
                         completion_tokens=ct, llm_calls=calls, tool_runs=tools, latency_s=lat)


def test_wilson_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    lo, hi = wilson_interval(500, 1000)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.0619, abs=1e-3)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_group_metrics_sums_and_means():
    rows = [result(0, True, pt=10, ct=5, calls=2, tools=1, lat=1.0),
            result(1, False, mode="slow", pt=100, ct=50, calls=6, tools=2, lat=3.0),
            result(2, False, mode=None, error="BackendError: x", pt=0, ct=0, calls=0, lat=0.5)]
    g = group_metrics(rows)
    assert (g.n, g.correct, g.errors) == (3, 1, 1)
    assert g.accuracy == pytest.approx(1 / 3)
    assert (g.prompt_tokens, g.completion_tokens) == (110, 55)
    assert g.tokens_per_problem == pytest.approx(55.0)
    assert g.llm_calls_per_problem == pytest.approx(8 / 3)
    assert g.tool_runs_per_problem == pytest.approx(1.0)
    assert g.latency_s_total == pytest.approx(4.5)
    assert g.slow_fraction == pytest.approx(1 / 3)
    assert group_metrics([]).n == 0


def test_router_precision_recall():
    rows = [
        result(0, True, mode="slow", requested="auto", fast_correct=False),   # TP
        result(1, True, mode="slow", requested="auto", fast_correct=True),    # FP
        result(2, False, mode="fast", requested="auto", fast_correct=False),  # FN
        result(3, True, mode="fast", requested="auto", fast_correct=True),    # TN
        result(4, True, mode="fast", requested="auto", fast_correct=True),    # TN
        result(5, True, mode="slow", requested="auto", fast_correct=None),    # slow up front
    ]
    r = router_metrics(rows)
    assert (r.true_positive, r.false_positive, r.false_negative, r.true_negative) == (1, 1, 1, 2)
    assert (r.labelled, r.unlabelled, r.escalated) == (5, 1, 3)
    assert r.precision == 0.5 and r.recall == 0.5 and r.fast_failure_rate == pytest.approx(0.4)
    assert router_metrics([result(0, True)]) is None  # not an auto run


def test_compute_metrics_groups():
    rows = [result(0, True, family="a"), result(1, False, family="a", mode="slow"),
            result(2, True, family="b")]
    m = compute_metrics(rows, wall_s=30.0)
    assert set(m.by_task) == {"a", "b"} and m.by_task["a"].accuracy == 0.5
    assert set(m.by_path) == {"fast", "slow"} and m.by_path["fast"].n == 2
    assert m.problems_per_minute == pytest.approx(6.0)
    assert m.router is None
