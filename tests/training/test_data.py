"""The data of an iteration: fresh problems, the frozen held-out set, relabelled self-checks."""

from __future__ import annotations

import json

import pytest

from agentrt.core.config import load_settings
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.data_synth.verify import judge_trace, problem_tags
from agentrt.training.data import (build_sft_dataset, cap_steps, heldout_problems, read_problems,
                           relabelled_checks, training_problems, write_problems)


def test_training_problems_never_repeat_held_out_ones(tmp_path):
    held = heldout_problems(["arithmetic", "word"], [1, 2], 6, seed=99)
    assert len(held) == 12 and {p.difficulty for p in held} == {1, 2}
    assert held == heldout_problems(["arithmetic", "word"], [1, 2], 6, seed=99)  # frozen
    # Exclude the first iteration's own problems too, to show the filter at work.
    first = training_problems(["arithmetic", "word"], [1, 2], 40, seed=0, iteration=1,
                              exclude=held)
    texts = {" ".join(p.text.split()).casefold() for p in held}
    assert not texts & {" ".join(p.text.split()).casefold() for p in first}
    second = training_problems(["arithmetic", "word"], [1, 2], 40, seed=0, iteration=2,
                               exclude=held + first)
    assert not {p.text for p in first} & {p.text for p in second}  # fresh seeds per iteration
    path = write_problems(held, tmp_path / "held.jsonl")
    assert read_problems(path) == held


def test_cap_steps_keeps_the_first_rows_of_capped_kinds():
    rows = [{"step": s, "i": i} for i, s in enumerate("aabbbcc")]
    kept = cap_steps(rows, {"a": 0, "b": 2})
    assert [(r["step"], r["i"]) for r in kept] == [("b", 2), ("b", 3), ("c", 5), ("c", 6)]


def test_cap_steps_takes_turns_between_families():
    rows = [{"step": "t", "family": f, "i": i} for i, f in enumerate(["x"] * 5 + ["y"] * 2)]
    kept = cap_steps(rows + [{"step": "u", "family": "x", "i": 7}], {"t": 4})
    assert [r["i"] for r in kept] == [0, 1, 5, 6, 7]


def test_cap_steps_per_family():
    rows = [{"step": "t", "family": f, "i": i} for i, f in enumerate("xxxxyyyz")]
    kept = cap_steps(rows, {"t": {"x": 1, "y": 2}})
    assert [r["i"] for r in kept] == [0, 4, 5, 7]


def test_step_caps_in_the_config_are_checked():
    from agentrt.core.errors import ConfigError
    from agentrt.training.config import load_config

    cfg = load_config("cpu", sft_step_caps={"tool_input": {"word": 5}, "judge": 0})
    assert cfg.sft_step_caps == {"tool_input": {"word": 5}, "judge": 0}
    for bad in ({"judge": -1}, {"tool_input": {"word": -2}}, {"judge": "many"}):
        with pytest.raises(ConfigError, match="sft_step_caps"):
            load_config("cpu", sft_step_caps=bad)


@pytest.mark.parametrize("structured", [False, True])
def test_wrong_fast_answers_teach_the_check_to_say_no(tmp_path, structured):
    from agentrt.data_synth.generators import generate

    right, wrong = generate("arithmetic", 2, seed=3, difficulty=1)
    store_url = f"sqlite:///{tmp_path / 't.db'}"
    check = ('{"reason": "looks fine", "verdict": "yes"}' if structured
             else "Looks fine.\nVerdict: yes")
    script = [f"Final answer: {right.answer}", check, "Final answer: 1", check]
    backend = FakeBackend(script=script, model_id="smollm2-135m",
                          supports_json_schema=structured)
    rt = Runtime(load_settings(backend="fake", database_url=store_url, home=tmp_path),
                 backend=backend)
    ids = [rt.solve(p.text, mode="fast", tags=problem_tags(p)).trace_id for p in (right, wrong)]
    judges = [judge_trace(rt.store.get_trace(i)) for i in ids]
    rows = relabelled_checks(judges)
    verdicts = []
    for row in rows:
        reply = row["messages"][-1]["content"]
        if structured:
            obj = json.loads(reply)
            assert list(obj) == ["reason", "verdict"]  # the schema's key order
            verdicts.append(obj["verdict"])
        else:
            verdicts.append(reply.rsplit("Verdict: ", 1)[1])
        assert row["step"] == "fast_check_relabelled" and row["source"] == "model"
    assert verdicts == ["yes", "no"]  # the model said yes to both; the truth differs
    rt.close()


def test_sft_dataset_is_registered_once_and_rebuilt_after_a_crash(tmp_path, smollm2_dir):
    from agentrt.data_synth.compile.registry import get_dataset
    from agentrt.data_synth.generators import generate
    from agentrt.data_synth.teacher import gold_traces

    settings = load_settings(backend="hf", model="smollm2-135m", home=tmp_path,
                             database_url=f"sqlite:///{tmp_path / 'd.db'}")
    rt = Runtime(settings, backend=FakeBackend())
    store = rt.store
    report = gold_traces(generate("arithmetic", 2, seed=8, difficulty=1), store=store,
                         settings=settings, mode="both")
    for t in report.trace_ids:
        store.tag(t, split="train", iterate_run="r")
    out = tmp_path / "sft"
    out.mkdir()
    (out / "junk").write_text("left by a killed build")  # saved, never registered
    kw = dict(tags={"iterate_run": "r", "split": "train"}, out=out, name="r-sft",
              tokenizer=str(smollm2_dir), max_tokens=1024, relabel=True,
              caps={"reflect": 0})
    record = build_sft_dataset(store, **kw)
    steps = record.meta["composition"]["groups"]
    assert "reflect" not in steps and "fast_check" not in steps  # capped; gold checks dropped
    assert {"design", "tool_input", "fast_answer"} <= set(steps)
    assert not (out / "junk").exists()
    again = build_sft_dataset(store, **kw)  # a resumed stage reuses the registered dataset
    assert again.id == record.id == get_dataset(store, "r-sft").id
    rt.close()


def test_sft_dataset_mixes_general_chat_at_the_asked_share(tmp_path, smollm2_dir):
    from agentrt.data_synth.generators import generate
    from agentrt.data_synth.teacher import gold_traces

    settings = load_settings(backend="hf", model="smollm2-135m", home=tmp_path,
                             database_url=f"sqlite:///{tmp_path / 'd.db'}")
    rt = Runtime(settings, backend=FakeBackend())
    report = gold_traces(generate("arithmetic", 2, seed=8, difficulty=1), store=rt.store,
                         settings=settings, mode="both")
    for t in report.trace_ids:
        rt.store.tag(t, split="train", iterate_run="r")
    general = [[{"role": "user", "content": f"Say hello number {i}."},
                {"role": "assistant", "content": f"Hello {i}!"}] for i in range(200)]
    record = build_sft_dataset(rt.store, tags={"iterate_run": "r", "split": "train"},
                               out=tmp_path / "sft", name="r-sft", tokenizer=str(smollm2_dir),
                               max_tokens=1024, relabel=True, general=general,
                               general_mix=0.25, seed=3)
    groups = record.meta["composition"]["groups"]
    agent = record.rows - groups["general"]["rows"]
    assert groups["general"]["rows"] == round(agent * 0.25 / 0.75) > 0
    assert record.meta["general_mix"]["reached"] == pytest.approx(0.25, abs=0.05)
    from datasets import load_from_disk

    chat = [r for r in load_from_disk(record.path) if r["step"] == "general"]
    assert chat and all(r["source"] == "general" and r["messages"][-1]["content"]
                        .startswith("Hello") for r in chat)
    rt.close()


def test_a_run_from_a_trained_model_mixes_in_another_models_chat(tmp_path, monkeypatch):
    """`general_source = "model:<name>"`: the general mix is the named model's replies (the
    untrained base's, when the run starts from a trained model), not the run's own base's."""
    from types import SimpleNamespace

    from agentrt.core.errors import ConfigError
    from agentrt.training import pipeline
    from agentrt.training.config import load_config

    for bad in ("model:", "model: ", "chat.txt"):
        with pytest.raises(ConfigError, match="general_source"):
            load_config("tiny", general_mix=0.1, general_source=bad)
    cfg = load_config("tiny", general_mix=0.1, general_source="model:untrained")
    asked: list = []
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Hello."}]})
                    + "\n")
    monkeypatch.setattr(pipeline, "resolve_model",
                        lambda name, *a, **k: asked.append(name) or str(tmp_path / name))
    monkeypatch.setattr(pipeline, "general_examples",
                        lambda model, n, **k: asked.append(str(model)) or chat)
    monkeypatch.setattr(pipeline, "_base_path", lambda ctx: pytest.fail("the run's base"))
    ctx = SimpleNamespace(cfg=cfg, home=tmp_path, db_url="sqlite://", progress=None)
    assert pipeline._general(ctx)[0][-1]["content"] == "Hello."
    assert asked == ["untrained", str(tmp_path / "untrained")]
