"""Agreement signals, the real slow path under auto, and the router CLI."""

import itertools
import json
from unittest import mock

import pytest

from agentrt.cli import main
from agentrt.core.config import load_settings
from agentrt.core.types import Outcome
from agentrt.llm.fake import FakeBackend
from agentrt.router import FeatureSpec, RouterExample, TrainConfig, auto, fit_router
from agentrt.router.signals import answers_agree
from agentrt.router.train import signals_from_steps
from agentrt.runtime import Runtime


def test_answers_agree():
    assert answers_agree("12", "12.0") and answers_agree("$1,200", "1200")
    assert answers_agree("Paris ", "paris.") and not answers_agree("12", "13")
    assert not answers_agree("", "")


def agreement_model():
    """A router that learned: fast fails when sampled answers disagree with it."""
    examples = [RouterExample(text=f"What is {i} plus {i + 1}?", fast_failed=a < 0.5,
                              signals={"agreement": a})
                for i, a in enumerate([0.0, 0.25, 0.25, 0.0, 1.0, 0.75, 1.0, 1.0, 0.0, 0.75,
                                       1.0, 0.25, 0.0, 1.0, 0.75, 0.25])]
    cfg = TrainConfig(features=FeatureSpec(dim=64, signals=("agreement",), agreement_samples=4),
                      epochs=400, folds=4)
    return fit_router(examples, cfg).model_copy(update={"version": 7})


class ObservedSlow(Runtime):
    def _run_mode(self, mode, problem, context, ctx):
        slow = Outcome(mode="slow", answer="slow", verdict="yes")
        with mock.patch.object(auto, "run_slow", lambda *a, **kw: slow):  # the router's slow path
            return super()._run_mode(mode, problem, context, ctx)


@pytest.mark.parametrize("samples,escalates", [(("5",), False), (("4", "6", "9", "1"), True)])
def test_agreement_signal_drives_learned_review(store, tmp_path, monkeypatch, samples, escalates):
    import agentrt.router.policies as policies

    model = agreement_model()
    monkeypatch.setattr(policies, "_cached_model", lambda home, ref: model)
    cycle = itertools.cycle(samples)
    backend = FakeBackend(rules=[
        (r"Proposed (final )?answer", '{"verdict": "yes", "reason": "ok"}'),
        (r".*", lambda req: f"Final answer: {next(cycle) if req.params.temperature > 0 else 5}"),
    ])
    settings = load_settings(backend="fake", model="fake", router="learned", home=tmp_path)
    sol = ObservedSlow(settings, backend=backend, store=store).solve("What is 2 plus 3?", mode="auto")
    assert sol.mode == ("slow" if escalates else "fast")
    sampled = [r for r in backend.requests if r.params.n == 4]
    assert len({id(r) for r in sampled}) == 1 and sampled[0].params.temperature > 0  # one call, n=4
    trace = store.get_trace(sol.trace_id)
    agreement = next(s for s in trace.steps if s.name == "agreement").outputs["agreement"]
    assert agreement == (1.0 if not escalates else 0.0)
    review = next(s for s in trace.steps if s.name == "review")
    assert review.inputs["signals"] == {"agreement": agreement}
    assert review.inputs["router_version"] == 7
    assert signals_from_steps(trace.steps)["agreement"] == agreement  # readable for training


def test_auto_escalates_into_the_real_slow_path(store, tmp_path):
    backend = FakeBackend(rules=[(r"Proposed (final )?answer", '{"verdict": "no", "reason": "x"}')],
                          default="Final answer: 7")
    settings = load_settings(backend="fake", model="fake", home=tmp_path)
    sol = Runtime(settings, backend=backend, store=store).solve("What is 3+4?", mode="auto")
    assert sol.mode == "slow" and sol.requested_mode == "auto" and sol.llm_calls > 2
    names = [s.name for s in store.get_trace(sol.trace_id).steps]
    assert names[:6] == ["route", "fast_answer", "extract_answer", "fast_check", "verdict", "review"]
    assert "reflect" in names[6:]  # slow thinking ran after the decision


def test_router_cli_train_and_show(store, tmp_path, monkeypatch, capsys, graded_traces):
    graded_traces(store, 60, seed=8)
    monkeypatch.setenv("AGENTRT_HOME", str(tmp_path / "home"))
    db = ["--database-url", store.url]
    main(["router", "train", "--slow-fraction", "0.4", "--dim", "512", "--epochs", "80",
          "--tag", "eval_run=syn8", *db])
    text = capsys.readouterr().out
    assert "router v1" in text and "out-of-fold" in text
    main(["router", "train", "--signals", "verdict", "--dim", "512", "--epochs", "80", "--json", *db])
    data = json.loads(capsys.readouterr().out)
    assert data["version"] == 2 and data["features"]["signals"] == ["verdict"]
    assert "weights" not in data
    main(["router", "show", "1"])
    text = capsys.readouterr().out
    assert "router v1" in text and "* v1" in text and "  v2" in text
    with pytest.raises(SystemExit) as e:
        main(["router", "train", "--tag", "broken", *db])
    assert e.value.code == 2 and "KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["router", "train", "--tag", "eval_run=none", *db])
    assert "no graded traces" in capsys.readouterr().err
