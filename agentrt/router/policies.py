"""The routing policies (`escalate`, `fast`, `slow`, `learned`) and the registry that builds them.

A policy spec is a string, as in `Settings.router`: a registry name, optionally with an argument
after a colon (`learned:3` pins version 3 of the saved router, `learned:ab12cd` a hash prefix;
plain `learned` takes the newest). Built policies are cached per spec and home; a learned spec
without a pin re-reads the manifest, so a newly trained version is picked up by the next solve.

This module knows nothing about graphs or the store; it reads saved router files only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.router.base import FastAttempt, RouteDecision, RouterPolicy
from agentrt.router.model import RouterModel
from agentrt.router.registry import list_routers, load_router_model

__all__ = ["EscalatePolicy", "FastPolicy", "SlowPolicy", "LearnedPolicy", "POLICIES",
           "load_policy", "policy_for_settings"]


class FastPolicy:
    """Always keep the fast answer, whatever the self-check says."""

    name = "fast"
    agreement_samples = 0

    def route(self, problem: str) -> RouteDecision:
        return RouteDecision(path="fast", reason="policy 'fast' always answers fast",
                             policy=self.name)

    def review(self, problem: str, attempt: FastAttempt) -> RouteDecision:
        return RouteDecision(path="fast", policy=self.name, inputs={"verdict": attempt.verdict},
                             reason="policy 'fast' keeps the fast answer "
                                    f"(check: {attempt.verdict})")


class SlowPolicy:
    """Always think slowly; no fast attempt is made."""

    name = "slow"
    agreement_samples = 0

    def route(self, problem: str) -> RouteDecision:
        return RouteDecision(path="slow", reason="policy 'slow' always thinks slowly",
                             policy=self.name)

    def review(self, problem: str, attempt: FastAttempt) -> RouteDecision:
        return self.route(problem)


class EscalatePolicy:
    """Answer fast, self-check, and think slowly only when the check does not say yes.

    Args:
        unknown_escalates: whether an "unknown" verdict escalates like "no" does.
    """

    name = "escalate"
    agreement_samples = 0

    def __init__(self, unknown_escalates: bool = True):
        self.unknown_escalates = unknown_escalates

    def route(self, problem: str) -> RouteDecision:
        return RouteDecision(path="fast", reason="escalate: answer fast first, then self-check",
                             policy=self.name)

    def review(self, problem: str, attempt: FastAttempt) -> RouteDecision:
        v = attempt.verdict
        escalate = v == "no" or (v == "unknown" and self.unknown_escalates)
        inputs = {"verdict": v, "unknown_escalates": self.unknown_escalates,
                  "check_reason": attempt.check_reason[:300]}
        if escalate:
            return RouteDecision(path="slow", policy=self.name, inputs=inputs,
                                 reason=f"escalate: self-check said {v!r}, so slow thinking ran")
        note = " (unknown does not escalate)" if v == "unknown" else ""
        return RouteDecision(path="fast", policy=self.name, inputs=inputs,
                             reason=f"escalate: self-check said {v!r}{note}, fast answer kept")


class LearnedPolicy:
    """Route by a trained classifier's estimate that fast fails.

    Without signals the model decides up front from the problem text alone (a predicted failure
    goes straight to slow, saving the fast attempt). With signals it needs the fast attempt
    first and decides in `review`.
    """

    name = "learned"

    def __init__(self, model: RouterModel):
        self.model = model
        signals = model.features.signals
        self.agreement_samples = model.features.agreement_samples if "agreement" in signals else 0

    def _inputs(self, score: float, signals: dict[str, Any] | None = None) -> dict[str, Any]:
        out = {"router_version": self.model.version, "router_hash": (self.model.hash or "")[:16],
               "threshold": self.model.threshold, "score": round(score, 6)}
        if signals:
            out["signals"] = {k: signals[k] for k in self.model.features.signals}
        return out

    def _decide(self, score: float, signals: dict[str, Any] | None) -> RouteDecision:
        slow = score >= self.model.threshold
        verb = "predicted fast fails" if slow else "predicted fast succeeds"
        cmp = ">=" if slow else "<"
        return RouteDecision(
            path="slow" if slow else "fast", score=score, policy=self.name,
            inputs=self._inputs(score, signals),
            reason=f"learned router v{self.model.version}: {verb} "
                   f"(p={score:.3f} {cmp} {self.model.threshold:.3f})",
        )

    def route(self, problem: str) -> RouteDecision:
        if self.model.uses_signals:
            return RouteDecision(path="fast", policy=self.name,
                                 reason="learned router reads signals of a fast attempt first",
                                 inputs={"router_version": self.model.version})
        return self._decide(self.model.score(problem), None)

    def review(self, problem: str, attempt: FastAttempt) -> RouteDecision:
        if not self.model.uses_signals:
            return RouteDecision(path="fast", policy=self.name,
                                 inputs={"router_version": self.model.version},
                                 reason="learned router chose fast up front; answer kept")
        signals = attempt.signals()
        return self._decide(self.model.score(problem, signals), signals)


def _learned(arg: str, home: Path, unknown_escalates: bool) -> RouterPolicy:
    return LearnedPolicy(_cached_model(home, arg or None))


# name -> factory(argument, home, unknown_escalates); adding a policy is one class and one line.
POLICIES: dict[str, Callable[[str, Path, bool], RouterPolicy]] = {
    "escalate": lambda arg, home, unk: EscalatePolicy(unknown_escalates=unk),
    "fast": lambda arg, home, unk: FastPolicy(),
    "slow": lambda arg, home, unk: SlowPolicy(),
    "learned": _learned,
}

_MODELS: dict[tuple[str, str], RouterModel] = {}
_LOCK = threading.Lock()


def _cached_model(home: Path, ref: str | None) -> RouterModel:
    versions = list_routers(home)
    key_ref = ref or (versions[-1].hash if versions else "")
    key = (str(home), key_ref)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
    model = load_router_model(home, ref)
    with _LOCK:
        _MODELS[key] = model
    return model


def load_policy(spec: str, *, home: Path | str, unknown_escalates: bool = True) -> RouterPolicy:
    """Build the policy a spec names.

    Args:
        spec: "escalate", "fast", "slow", "learned", "learned:<version>" or "learned:<hash>".
        home: the home directory holding saved routers.
        unknown_escalates: for `escalate`, whether an "unknown" verdict escalates.

    Raises:
        ConfigError: unknown policy name, or an argument given to a policy that takes none.
        NotFoundError: `learned` with no saved router (or no matching version).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError("router policy must be a non-empty name")
    name, _, arg = spec.strip().partition(":")
    factory = POLICIES.get(name)
    if factory is None:
        raise ConfigError(f"unknown router policy {spec!r}; choose one of: "
                          f"{', '.join(POLICIES)} (learned:<version> pins a version)")
    if arg and name != "learned":
        raise ConfigError(f"router policy {name!r} takes no argument (got {spec!r})")
    return factory(arg, Path(home).expanduser(), unknown_escalates)


def policy_for_settings(settings: Any) -> RouterPolicy:
    """The policy `Settings.router` names, with the settings' home and unknown handling."""
    return load_policy(settings.router, home=settings.home,
                       unknown_escalates=settings.unknown_escalates)
