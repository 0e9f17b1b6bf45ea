"""`solve(mode="auto")`: ask the policy, run the fast and/or slow path, record every decision.

    route(problem) --slow--> slow path
        | fast
        v
    fast path (answer + self-check) -> [k extra samples if the policy wants agreement]
        -> review(problem, attempt) --fast--> keep the fast answer
                                    --slow--> slow path (escalation)

Both decisions are decision steps of the trace ("route" and "review") with the policy's inputs,
score and reason. The paths are the workflows' `run_fast` and `run_slow`, each returning an
`Outcome`; this module sets which path answered and why, and knows nothing of their graphs, nor
of traces beyond recording its decisions. When slow thinking runs out of budget after an
escalation without an answer of its own, the fast answer is kept (the best answer so far) and
the reason says so.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agentrt.core.errors import LimitExceededError
from agentrt.core.types import Outcome
from agentrt.router.base import FastAttempt, RouteDecision, RouterPolicy
from agentrt.router.signals import sample_agreement
from agentrt.workflows.context import SolveContext
from agentrt.workflows.fast import run_fast
from agentrt.workflows.slow.graph import run_slow

__all__ = ["run_auto"]


def _record(ctx: SolveContext, name: str, decision: RouteDecision, extra: dict[str, Any]) -> None:
    ctx.recorder.decision(
        name, {"policy": decision.policy, **extra, **decision.inputs},
        {"path": decision.path, "reason": decision.reason, "score": decision.score},
    )


def _attempt(fast: Outcome) -> FastAttempt:
    verdict = fast.verdict
    return FastAttempt(
        answer=str(fast.answer or ""),
        verdict=verdict if verdict in ("yes", "no", "unknown") else "unknown",
        check_reason=str(fast.check_reason or ""),
        finish_reason=fast.finish_reason,
    )


def _slow_path(problem: str, context: str | None, ctx: SolveContext, checkpointer: Any,
               decision: RouteDecision, fast: Outcome | None) -> Outcome:
    reason = decision.reason
    try:
        slow = run_slow(problem, context, ctx, checkpointer=checkpointer)
    except LimitExceededError as e:
        partial = replace(e.partial or Outcome(mode="slow"), mode="slow", route_reason=reason)
        if not partial.answer and fast is not None and fast.answer:
            partial = replace(partial, answer=fast.answer, verdict=fast.verdict,
                              route_reason=f"{reason}; slow thinking ran out of budget "
                                           f"({e.limit}) before answering: kept the fast answer")
        e.partial = partial
        raise
    return replace(slow, mode="slow", route_reason=reason)


def run_auto(policy: RouterPolicy, problem: str, context: str | None, ctx: SolveContext, *,
             checkpointer: Any = None) -> Outcome:
    """Run one `auto` solve under `policy`.

    Args:
        policy: the routing policy.
        problem: the problem text.
        context: earlier conversation (passed on to both paths and the agreement samples).
        ctx: the solve's `SolveContext` (recorder, backend, profile, limits).
        checkpointer: where slow thinking checkpoints (None: not resumable).

    Returns:
        The outcome of the path that produced the answer, with `mode` (the path taken) and
        `route_reason` set.

    Raises:
        LimitExceededError: a budget ran out; `partial` holds the best answer so far.
    """
    pre = policy.route(problem)
    _record(ctx, "route", pre, {"stage": "before", "problem_chars": len(problem)})
    if pre.path == "slow":
        return _slow_path(problem, context, ctx, checkpointer, pre, None)
    try:
        fast = run_fast(problem, context, ctx)
    except LimitExceededError as e:
        e.partial = replace(e.partial or Outcome(mode="fast"), mode="fast",
                            route_reason=f"{pre.reason}; budget ran out during the fast attempt")
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
        return replace(fast, mode="fast", route_reason=post.reason)
    return _slow_path(problem, context, ctx, checkpointer, post, fast)
