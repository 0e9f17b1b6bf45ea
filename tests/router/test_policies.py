"""Routing policies through `Runtime.solve(mode="auto")` on the scripted backend."""

from unittest import mock

import pytest

from agentrt.core.config import Limits, load_settings
from agentrt.core.errors import ConfigError, LimitExceededError, NotFoundError
from agentrt.core.types import Outcome
from agentrt.llm.fake import FakeBackend
from agentrt.router import EscalatePolicy, FastAttempt, auto, load_policy
from agentrt.runtime import Runtime


class ObservedRuntime(Runtime):
    """The real runtime, with the slow path replaced by an observable stand-in."""

    def __init__(self, *a, slow_answer="slow-answer", slow_error=None, **kw):
        super().__init__(*a, **kw)
        self.slow_calls = 0
        self.slow_answer, self.slow_error = slow_answer, slow_error

    def _slow(self, problem, context, ctx, **_):
        self.slow_calls += 1
        ctx.recorder.decision("slow_stand_in", {"problem": problem}, {})
        if self.slow_error is not None:
            raise self.slow_error
        return Outcome(mode="slow", answer=self.slow_answer, verdict="yes",
                       route_reason="slow mode requested")

    def _run_mode(self, mode, problem, context, ctx):
        with mock.patch.object(auto, "run_slow", self._slow):  # the router's slow path
            return super()._run_mode(mode, problem, context, ctx)


def backend_with(verdict_reply: str) -> FakeBackend:
    return FakeBackend(rules=[(r"Proposed (final )?answer", verdict_reply), (r".*", "Final answer: 7")])


def make(store, tmp_path, verdict_reply, router="escalate", unknown_escalates=True, **kw):
    settings = load_settings(backend="fake", model="fake", router=router, home=tmp_path / "home",
                             unknown_escalates=unknown_escalates)
    return ObservedRuntime(settings, backend=backend_with(verdict_reply), store=store, **kw)


VERDICTS = {"yes": '{"verdict": "yes", "reason": "ok"}',
            "no": '{"verdict": "no", "reason": "7 is wrong"}',
            "unknown": "I cannot tell."}


@pytest.mark.parametrize("verdict,unknown_escalates,escalates", [
    ("yes", True, False), ("no", True, True), ("unknown", True, True),
    ("yes", False, False), ("no", False, True), ("unknown", False, False),
])
def test_escalate_exactly_when_check_fails(store, tmp_path, verdict, unknown_escalates, escalates):
    rt = make(store, tmp_path, VERDICTS[verdict], unknown_escalates=unknown_escalates)
    sol = rt.solve("What is 3+4?", mode="auto")
    assert rt.slow_calls == (1 if escalates else 0)
    assert sol.requested_mode == "auto"
    assert sol.mode == ("slow" if escalates else "fast")
    assert sol.answer == ("slow-answer" if escalates else "7")
    assert repr(verdict) in sol.route_reason or verdict in sol.route_reason
    trace = store.get_trace(sol.trace_id)
    decisions = {s.name: s for s in trace.steps if s.kind == "decision"}
    assert decisions["route"].outputs["path"] == "fast"
    review = decisions["review"]
    assert review.inputs["verdict"] == verdict
    assert review.inputs["unknown_escalates"] is unknown_escalates
    assert review.inputs["policy"] == "escalate"
    assert review.outputs["path"] == sol.mode
    assert trace.meta["route_reason"] == sol.route_reason
    # the decision is recorded after the check and before the slow path runs
    names = [s.name for s in trace.steps]
    assert names.index("verdict") < names.index("review")
    if escalates:
        assert names.index("review") < names.index("slow_stand_in")


def test_fast_and_slow_policies(store, tmp_path):
    rt = make(store, tmp_path, VERDICTS["no"], router="fast")
    sol = rt.solve("What is 3+4?", mode="auto")
    assert (sol.mode, sol.answer, rt.slow_calls) == ("fast", "7", 0)
    assert "policy 'fast'" in sol.route_reason

    rt = make(store, tmp_path, VERDICTS["yes"], router="slow")
    sol = rt.solve("What is 3+4?", mode="auto")
    assert (sol.mode, sol.answer, rt.slow_calls) == ("slow", "slow-answer", 1)
    assert sol.llm_calls == 0  # no fast attempt was made
    assert store.get_trace(sol.trace_id).steps[0].outputs["path"] == "slow"


def test_budget_during_escalation_keeps_fast_answer(store, tmp_path):
    err = LimitExceededError("budget exceeded: tokens", limit="tokens")
    rt = make(store, tmp_path, VERDICTS["no"], slow_error=err)
    sol = rt.solve("What is 3+4?", mode="auto")
    assert sol.status == "budget_exceeded:tokens"
    assert (sol.mode, sol.answer) == ("slow", "7")
    assert "kept the fast answer" in sol.route_reason


def test_budget_during_fast_attempt(store, tmp_path):
    settings = load_settings(backend="fake", model="fake", home=tmp_path / "h",
                             limits=Limits(max_llm_calls=1))
    rt = ObservedRuntime(settings, backend=backend_with(VERDICTS["no"]), store=store)
    sol = rt.solve("What is 3+4?", mode="auto")
    assert sol.status == "budget_exceeded:llm_calls"
    assert sol.mode == "fast" and rt.slow_calls == 0
    assert "budget ran out" in sol.route_reason


def test_unknown_policy_and_missing_model(store, tmp_path):
    with pytest.raises(ConfigError, match="unknown router policy 'smart'"):
        load_policy("smart", home=tmp_path)
    with pytest.raises(ConfigError, match="takes no argument"):
        load_policy("escalate:2", home=tmp_path)
    with pytest.raises(NotFoundError, match="router train"):
        load_policy("learned", home=tmp_path)
    rt = make(store, tmp_path, VERDICTS["yes"], router="learned")
    with pytest.raises(NotFoundError):
        rt.solve("What is 3+4?", mode="auto")


def test_escalate_policy_unit():
    p = EscalatePolicy(unknown_escalates=False)
    assert p.route("x").path == "fast"
    assert p.review("x", FastAttempt(answer="1", verdict="no")).path == "slow"
    assert p.review("x", FastAttempt(answer="1", verdict="unknown")).path == "fast"
    assert p.review("x", FastAttempt(answer="1", verdict="yes")).path == "fast"
