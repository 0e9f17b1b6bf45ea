"""Validation of the store's records."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from agentrt.store import StepRecord


def test_step_defaults_and_utc():
    step = StepRecord(kind="llm", name="answer")
    assert step.status == "ok" and step.inputs == {} and step.id is None
    assert step.started_at.tzinfo == timezone.utc
    naive = StepRecord(kind="tool", name="py", started_at=datetime(2025, 1, 1, 12))
    assert naive.started_at == datetime(2025, 1, 1, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "thought", "name": "x"},
        {"kind": "llm", "name": ""},
        {"kind": "llm", "name": "x", "status": "maybe"},
        {"kind": "llm", "name": "x", "prompt_tokens": -1},
        {"kind": "llm", "name": "x", "latency_s": -0.1},
        {"kind": "llm", "name": "x", "template_hash": "f" * 65},
    ],
)
def test_step_rejects_bad_values(bad):
    with pytest.raises(ValidationError):
        StepRecord(**bad)
