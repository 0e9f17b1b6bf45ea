"""The router's nouns: what a policy sees, what it decides, and the protocol every policy follows.

A policy is asked twice per `auto` solve. `route(problem)` comes first, before any model call,
and may send the problem straight to slow thinking. If it says fast, the fast graph runs (answer
and self-check) and `review(problem, attempt)` decides whether to keep that answer or escalate.
Both answers are `RouteDecision`s, recorded as decision steps of the trace with their inputs.

This module knows no graphs, stores or models.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RoutePath", "RouteDecision", "FastAttempt", "RouterPolicy"]

RoutePath = Literal["fast", "slow"]


class RouteDecision(BaseModel):
    """One routing decision.

    Attributes:
        path: "fast" (answer fast / keep the fast answer) or "slow" (think slowly).
        reason: one human sentence saying why; ends up in `Solution.route_reason`.
        inputs: what the decision was based on (verdict, signals, thresholds).
        score: the policy's estimate that fast fails, when it has one.
        policy: name of the policy that decided.
    """

    model_config = ConfigDict(frozen=True)

    path: RoutePath
    reason: str
    inputs: dict[str, Any] = Field(default_factory=dict)
    score: float | None = None
    policy: str = ""


class FastAttempt(BaseModel):
    """What the fast graph produced, as a policy's `review` sees it."""

    answer: str = ""
    verdict: Literal["yes", "no", "unknown"] = "unknown"
    check_reason: str = ""
    finish_reason: str | None = None
    agreement: float | None = None

    def signals(self) -> dict[str, Any]:
        """The cheap signals a learned router may read, by name."""
        return {"verdict": self.verdict, "truncated": self.finish_reason == "length",
                "agreement": self.agreement}


@runtime_checkable
class RouterPolicy(Protocol):
    """A routing policy.

    Attributes:
        name: registry name ("escalate", "fast", "slow", "learned").
        agreement_samples: how many extra sampled answers `review` wants in
            `FastAttempt.agreement` (0: none; each sample costs tokens).
    """

    name: str
    agreement_samples: int

    def route(self, problem: str) -> RouteDecision:
        """Decide before any model call: "fast" to try fast first, "slow" to go slow at once."""
        ...

    def review(self, problem: str, attempt: FastAttempt) -> RouteDecision:
        """Decide after the fast attempt: "fast" keeps its answer, "slow" escalates."""
        ...
