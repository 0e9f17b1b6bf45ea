"""The learned router: trains on synthetic graded traces and beats constant policies held out."""

import json
import random

import numpy as np
import pytest

from agentrt.core.config import load_settings
from agentrt.core.errors import InvalidInputError, StoreError
from agentrt.llm.fake import FakeBackend
from agentrt.router import (FastAttempt, FeatureSpec, LearnedPolicy, RouterExample, TrainConfig,
                            fit_router, list_routers, load_policy, load_router_model, train_router)
from agentrt.router.registry import routers_dir
from agentrt.runtime import Runtime

SLOW_SUCCESS = 0.8  # in the held-out simulation, slow thinking solves 80% of what it gets


def routed_accuracy(decide_slow, fails, slow_ok):
    """Share solved when `decide_slow[i]` sends problem i to slow, else fast."""
    return float(np.mean([ok if s else not f for s, f, ok in zip(decide_slow, fails, slow_ok)]))


def test_learned_router_beats_constant_policies(store, tmp_path, graded_traces, synthetic):
    graded_traces(store, 400, seed=1)
    model = train_router(store, home=tmp_path, config=TrainConfig(target_slow_fraction=0.45))
    assert model.version == 1 and len(model.hash) == 64
    m = model.metrics
    assert m["n"] == 400 and m["oof_accuracy"] > m["constant_accuracy"] + 0.1
    assert m["oof_auc"] > 0.75

    test = synthetic(400, seed=99)
    fails = [f for _, f in test]
    rng = random.Random(5)
    slow_ok = [rng.random() < SLOW_SUCCESS for _ in test]
    scores = np.array([model.score(t) for t, _ in test])
    pred_fail = scores >= model.threshold
    # as a classifier of "fast fails": better than the best constant guess
    acc = float(np.mean(pred_fail == np.array(fails)))
    constant = max(np.mean(fails), 1 - np.mean(fails))
    assert acc > constant + 0.1
    # as a router: more solved than always-fast, and than random routing at the same slow share
    frac = float(pred_fail.mean())
    assert 0.3 < frac < 0.6  # calibration held on unseen data
    learned = routed_accuracy(pred_fail, fails, slow_ok)
    always_fast = routed_accuracy([False] * len(test), fails, slow_ok)
    random_same = np.mean([routed_accuracy(np.random.default_rng(s).random(len(test)) < frac,
                                           fails, slow_ok) for s in range(20)])
    assert learned > always_fast + 0.1
    assert learned > random_same + 0.1

    policy = load_policy("learned", home=tmp_path)
    hard = next(t for t, _ in test if "system" in t)
    easy = next(t for t, _ in test if t.startswith("Add"))
    assert policy.route(hard).path == "slow" and policy.route(hard).score > model.threshold
    assert policy.route(easy).path == "fast"
    assert "learned router v1" in policy.route(hard).reason


def test_signals_and_two_stage_routing(store, tmp_path, graded_traces):
    graded_traces(store, 200, seed=2)
    cfg = TrainConfig(features=FeatureSpec(dim=1024, signals=("verdict",)), epochs=200)
    model = train_router(store, home=tmp_path, config=cfg)
    assert model.features.signals == ("verdict",) and model.uses_signals
    policy = LearnedPolicy(model)
    text = "Add 5 and 7."
    assert policy.route(text).path == "fast"  # needs the fast attempt first
    p_yes = policy.review(text, FastAttempt(answer="12", verdict="yes")).score
    p_no = policy.review(text, FastAttempt(answer="12", verdict="no")).score
    assert p_no > p_yes  # a "no" from the self-check raises the predicted failure


def test_learned_policy_in_auto_solve_records_inputs(store, tmp_path, graded_traces):
    graded_traces(store, 120, seed=3)
    train_router(store, home=tmp_path, config=TrainConfig(target_slow_fraction=0.5, epochs=150))
    settings = load_settings(backend="fake", model="fake", router="learned", home=tmp_path)
    rt = Runtime(settings, backend=FakeBackend(default="Final answer: 12"), store=store)
    sol = rt.solve("Add 5 and 7.", mode="auto")
    assert sol.mode == "fast" and sol.answer == "12"
    route = store.get_trace(sol.trace_id).steps[0]
    assert route.name == "route" and route.inputs["policy"] == "learned"
    assert route.inputs["router_version"] == 1 and "score" in route.inputs
    assert route.outputs["path"] == "fast" and route.outputs["score"] < route.inputs["threshold"]


def test_versions_hashes_and_tamper_detection(store, tmp_path, graded_traces):
    graded_traces(store, 60, seed=4)
    cfg = TrainConfig(features=FeatureSpec(dim=256), epochs=50, folds=3)
    a = train_router(store, home=tmp_path, config=cfg)
    again = train_router(store, home=tmp_path, config=cfg)  # same data and config: same content
    assert (again.version, again.hash) == (a.version, a.hash)
    b = train_router(store, home=tmp_path, config=cfg.model_copy(update={"l2": 0.01}))
    assert b.version == 2 and b.hash != a.hash
    assert [v.version for v in list_routers(tmp_path)] == [1, 2]
    assert load_router_model(tmp_path).version == 2
    assert load_router_model(tmp_path, "1").hash == a.hash
    assert load_router_model(tmp_path, a.hash[:8]).version == 1
    path = routers_dir(tmp_path) / f"router-{a.hash[:16]}.json"
    data = json.loads(path.read_text())
    data["threshold"] = 0.0
    path.write_text(json.dumps(data))
    with pytest.raises(StoreError, match="does not match its recorded hash"):
        load_router_model(tmp_path, "1")


def test_token_budget_calibration(store, tmp_path, graded_traces):
    graded_traces(store, 100, seed=5, slow=10)
    # fast costs 100 tokens, slow 1000: a budget of 370 per problem allows 30% slow up front
    cfg = TrainConfig(features=FeatureSpec(dim=512), epochs=100, max_avg_tokens=370)
    model = train_router(store, home=tmp_path, config=cfg, save=False)
    cal = model.calibration
    assert cal["method"] == "max_avg_tokens" and cal["slow_fraction"] == pytest.approx(0.3)
    assert model.metrics["oof_slow_fraction"] == pytest.approx(0.3, abs=0.02)


def test_bad_training_input(store, tmp_path, graded_traces):
    with pytest.raises(InvalidInputError, match="no graded traces"):
        train_router(store, home=tmp_path)
    few = [RouterExample(text=f"q{i}", fast_failed=bool(i % 2)) for i in range(4)]
    with pytest.raises(InvalidInputError, match="at least 10"):
        fit_router(few)
    same = [RouterExample(text=f"q{i}", fast_failed=True) for i in range(20)]
    with pytest.raises(InvalidInputError, match="same outcome"):
        fit_router(same)
    graded_traces(store, 30, seed=6)
    with pytest.raises(InvalidInputError, match="fast and slow costs"):
        train_router(store, home=tmp_path, config=TrainConfig(max_avg_tokens=300))
    with pytest.raises(ValueError, match="either"):
        TrainConfig(max_avg_tokens=300, target_slow_fraction=0.2)
    with pytest.raises(ValueError, match="unknown signals"):
        FeatureSpec(signals=("vibes",))
    # traces without the agreement signal are skipped, leaving nothing to train on
    with pytest.raises(InvalidInputError):
        train_router(store, home=tmp_path,
                     config=TrainConfig(features=FeatureSpec(signals=("agreement",))))


def test_an_all_digit_hash_prefix_is_not_taken_for_a_version(tmp_path):
    from agentrt.core.errors import NotFoundError
    from agentrt.router.registry import RouterVersion, _pick

    def made(version: int, digest: str) -> RouterVersion:
        return RouterVersion(version=version, hash=digest, file=f"r{version}.json",
                             created_at="2026-01-01T00:00:00Z", threshold=0.5)

    versions = [made(1, "14807575" + "a" * 56), made(2, "ffff0000" + "b" * 56)]
    assert _pick(versions, "14807575", tmp_path).version == 1
    assert _pick(versions, "2", tmp_path).version == 2
    for missing in ("3", "v1480757", "999999"):
        with pytest.raises(NotFoundError):
            _pick(versions, missing, tmp_path)
