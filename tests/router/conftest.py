"""Fixtures for router tests: synthetic graded traces with a learnable rule (the store they are
written to is tests/conftest.py's)."""

import random

import pytest

from agentrt.store import StepRecord
from agentrt.core.types import Usage

_EASY = ["What is {a} + {b}?", "Compute {a} - {b}.", "What is {a} times 2?",
         "Add {a} and {b}.", "What is half of {c}?"]
_HARD = ["Solve the system {a}x + {b}y = {c} and {b}x - {a}y = {d} for x and y.",
         "A train leaves at {a} km/h and another at {b} km/h, {c} km apart; the first stops for "
         "{d} minutes. When do they meet, and how far has each gone?",
         "Find all integer roots of x^3 - {a}x^2 + {b}x - {c} = 0 and their product.",
         "How many ways can {a} people sit around a table if {b} of them refuse to sit together?",
         "The sum of three consecutive primes above {c} is divisible by {a}; find the smallest such sum."]


def synthetic_problem(rng: random.Random) -> tuple[str, bool]:
    """A problem and whether fast fails on it: hard templates fail 85%, easy ones 10%."""
    hard = rng.random() < 0.45
    vals = {k: rng.randint(2, 99) for k in "abcd"}
    text = rng.choice(_HARD if hard else _EASY).format(**vals)
    fails = rng.random() < (0.85 if hard else 0.10)
    return text, fails


@pytest.fixture
def graded_traces():
    """Write n synthetic graded fast traces (plus some slow ones) into a store."""

    def write(store, n: int, seed: int = 0, slow: int = 0, verdict_signal: bool = True):
        rng = random.Random(seed)
        items = []
        for _ in range(n):
            text, fails = synthetic_problem(rng)
            tid = store.start_trace(problem=text, requested_mode="fast", model_id="fake",
                                    backend="fake", tags={"eval_run": f"syn{seed}"})
            # the self-check is informative but noisy: it catches 60% of failures
            verdict = "no" if (fails and rng.random() < 0.6) else "yes"
            store.add_steps(tid, [
                StepRecord(kind="llm", name="fast_answer", outputs={"finish_reason": "stop"}),
                StepRecord(kind="decision", name="verdict", outputs={"verdict": verdict}),
            ] if verdict_signal else [])
            store.finish_trace(tid, answer="1", status="ok", mode="fast", verdict=verdict,
                               usage=Usage(prompt_tokens=40, completion_tokens=60))
            store.tag(tid, fast_correct="0" if fails else "1")
            items.append((text, fails, verdict))
        for _ in range(slow):
            text, _ = synthetic_problem(rng)
            tid = store.start_trace(problem=text, requested_mode="slow", model_id="fake",
                                    backend="fake", tags={"eval_run": f"syn{seed}"})
            store.finish_trace(tid, answer="1", status="ok", mode="slow",
                               usage=Usage(prompt_tokens=600, completion_tokens=400))
        return items

    return write


@pytest.fixture
def synthetic():
    """`synthetic(n, seed)` -> [(problem text, fast fails?)], from the same rule as the traces."""

    def make(n: int, seed: int):
        rng = random.Random(seed)
        return [synthetic_problem(rng) for _ in range(n)]

    return make
