"""`solve(mode="auto")`: ask the policy, run the fast and/or slow path, record every decision.

    route(problem) --slow--> slow path
        | fast
        v
    fast path (answer + self-check) -> [k extra samples if the policy wants agreement]
        -> review(problem, attempt) --fast--> keep the fast answer
                                    --slow--> slow path (escalation)

Both decisions are decision steps of the trace ("route" and "review") with the policy's inputs,
score and reason. The paths themselves are run through a callable the runtime hands in, so this
module knows nothing about which graphs implement fast and slow thinking. When slow thinking
runs out of budget after an escalation without an answer of its own, the fast answer is kept
(the best answer so far) and the reason says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentrt.core.errors import LimitExceededError
from agentrt.router.base import FastAttempt, RouteDecision, RouterPolicy
from agentrt.router.signals import sample_agreement

__all__ = ["run_auto", "RunPath"]

RunPath = Callable[[str], dict[str, Any]]


def _record(ctx: Any, name: str, decision: RouteDecision, extra: dict[str, Any]) -> None:
    ctx.recorder.decision(
        name, {"policy": decision.policy, **extra, **decision.inputs},
        {"path": decision.path, "reason": decision.reason, "score": decision.score},
    )


def _attempt(fast: dict[str, Any]) -> FastAttempt:
    verdict = fast.get("verdict")
    return FastAttempt(
        answer=str(fast.get("answer") or ""),
        verdict=verdict if verdict in ("yes", "no", "unknown") else "unknown",
        check_reason=str(fast.get("check_reason") or ""),
        finish_reason=fast.get("finish_reason"),
    )


def _run_slow(run_path: RunPath, decision: RouteDecision,
              fast: dict[str, Any] | None) -> dict[str, Any]:
    reason = decision.reason
    try:
        slow = run_path("slow")
    except LimitExceededError as e:
        partial = dict(getattr(e, "partial", None) or {})
        partial["mode"] = "slow"
        partial["route_reason"] = reason
        if not partial.get("answer") and fast and fast.get("answer"):
            partial["answer"] = fast["answer"]
            partial["verdict"] = fast.get("verdict")
            partial["route_reason"] = (f"{reason}; slow thinking ran out of budget "
                                       f"({e.limit}) before answering: kept the fast answer")
        e.partial = partial
        raise
    return {**slow, "mode": "slow", "route_reason": reason}


def run_auto(policy: RouterPolicy, problem: str, context: str | None, ctx: Any,
             run_path: RunPath) -> dict[str, Any]:
    """Run one `auto` solve under `policy`.

    Args:
        policy: the routing policy.
        problem: the problem text.
        context: earlier conversation (passed on to the agreement samples).
        ctx: the solve's `SolveContext` (recorder, backend, profile, limits).
        run_path: runs "fast" or "slow" and returns its result dict (answer, verdict, mode, ...).

    Returns:
        The result of the path that produced the answer, with "mode" (the path taken) and
        "route_reason" set.

    Raises:
        LimitExceededError: a budget ran out; `.partial` holds the best answer so far.
    """
    pre = policy.route(problem)
    _record(ctx, "route", pre, {"stage": "before", "problem_chars": len(problem)})
    if pre.path == "slow":
        return _run_slow(run_path, pre, None)
    try:
        fast = run_path("fast")
    except LimitExceededError as e:
        e.partial = {**(getattr(e, "partial", None) or {}), "mode": "fast",
                     "route_reason": f"{pre.reason}; budget ran out during the fast attempt"}
        raise
    attempt = _attempt(fast)
    if policy.agreement_samples:
        attempt.agreement = sample_agreement(ctx, problem, context, attempt.answer,
                                             policy.agreement_samples)
    post = policy.review(problem, attempt)
    _record(ctx, "review", post, {"stage": "after_fast", "answer": attempt.answer,
                                  "verdict": attempt.verdict,
                                  "truncated": attempt.finish_reason == "length",
                                  "agreement": attempt.agreement})
    if post.path == "fast":
        return {**fast, "mode": "fast", "route_reason": post.reason}
    return _run_slow(run_path, post, fast)
