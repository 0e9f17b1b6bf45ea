"""Hybrid thinking: decide per problem how hard to think, online, and learn it from traces.

    >>> from agentrt.router import load_policy
    >>> load_policy("escalate", home="/tmp/agentrt").name
    'escalate'

Policies (`policies.py`) follow one protocol (`base.py`): `escalate` (the default: answer fast,
self-check, think slowly when the check says no, and on "unknown" if configured), `fast`,
`slow`, and `learned` (a logistic regression on hashed n-grams of the problem text, optionally
with signals of a fast attempt, that predicts whether fast fails; `features.py`, `model.py`).
`auto.py` runs `solve(mode="auto")` under a policy and records each decision as a trace step.
`train.py` builds examples from graded traces and trains; `registry.py` saves content-hashed,
versioned models under the home directory.

This package knows how to route and how to learn routes; it runs fast and slow thinking through
the workflows' `run_fast` and `run_slow` without knowing how they work, and it does not know
traces beyond its decision steps, nor how answers are graded.
"""

from __future__ import annotations

from agentrt.router.auto import run_auto
from agentrt.router.base import FastAttempt, RouteDecision, RouterPolicy
from agentrt.router.features import SIGNALS, FeatureSpec
from agentrt.router.model import RouterExample, RouterModel, TrainConfig, fit_router
from agentrt.router.policies import (POLICIES, EscalatePolicy, FastPolicy, LearnedPolicy,
                                     SlowPolicy, load_policy, policy_for_settings)
from agentrt.router.registry import RouterVersion, list_routers, load_router_model, save_router
from agentrt.router.train import FAST_CORRECT_TAG, SLOW_CORRECT_TAG, collect_examples, train_router

__all__ = [
    "RouteDecision", "FastAttempt", "RouterPolicy", "POLICIES", "EscalatePolicy", "FastPolicy",
    "SlowPolicy", "LearnedPolicy", "load_policy", "policy_for_settings", "run_auto",
    "FeatureSpec", "SIGNALS", "RouterExample", "RouterModel", "TrainConfig", "fit_router",
    "RouterVersion", "save_router", "list_routers", "load_router_model", "FAST_CORRECT_TAG",
    "SLOW_CORRECT_TAG", "collect_examples", "train_router",
]
