"""Optima rounds: ranking and selection on their own, then one round end to end (team
conversations through the real team graph on the scripted backend, readability and training on
the tiny random Llama with TRL)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from agentrt.core.config import Limits, load_settings
from agentrt.core.types import Problem
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime
from agentrt.training.optima import (
    Conversation,
    generate_conversations,
    optima_problems,
    optima_round,
    rank,
    select,
)
from agentrt.training.optima_config import OptimaSettings

DATA = Path(os.environ.get("AGENTRT_DATA")
            or Path(__file__).resolve().parents[2].parent / "shared" / "data")
needs_gsm8k = pytest.mark.skipif(not (DATA / "gsm8k" / "train.jsonl").is_file(),
                                 reason="benchmark data folder not present")
AGENT = re.compile(r"Agent: (A\d) \(([^)]*)\), round (\d+) of (\d+)")


def conv(pid: str, sample: int, correct: bool, tokens: int, replies: list[str],
         prompt: str = "first prompt") -> Conversation:
    problem = Problem(id=pid, text="?", answer="7", grader="numeric")
    calls = [{"agent": "A1", "turn": 1, "messages": [{"role": "user", "content": prompt}],
              "reply": replies[0], "tokens": tokens}]
    calls += [{"agent": "A1", "turn": 2, "messages": [{"role": "user", "content": "later"}],
               "reply": r, "tokens": 0} for r in replies[1:]]
    return Conversation(problem=problem, sample=sample, trace_id=f"{pid}-{sample}",
                        answer="7" if correct else "3", correct=correct, tokens=tokens,
                        calls=calls)


def test_reward_prefers_right_then_short_then_readable(monkeypatch):
    s = OptimaSettings(token_weight=0.5, readability_weight=0.2)
    monkeypatch.setattr("agentrt.training.optima.readability",
                        lambda texts, model, home=None: [0.5 for _ in texts])
    convs = [conv("p", 0, True, 100, ["long"]), conv("p", 1, True, 20, ["short"]),
             conv("p", 2, False, 10, ["wrong"])]
    rank(convs, s, base_model="unused")
    assert [round(c.reward, 3) for c in convs] == [0.6, 1.0, 0.05]


def test_selection_keeps_the_best_right_conversation_and_pairs_first_messages():
    s = OptimaSettings(threshold=0.5, min_gap=0.3)
    best = conv("p", 0, True, 20, ["A1: it is 7", "agreed, 7"])
    worst = conv("p", 1, False, 90, ["A1: it is 3, because ...", "still 3"])
    best.reward, worst.reward = 1.0, -0.4
    other_prompt = conv("q", 0, True, 20, ["7"], prompt="another problem")
    low = conv("q", 1, False, 40, ["3"], prompt="a different first prompt")
    other_prompt.reward, low.reward = 0.9, -0.2
    below = conv("r", 0, True, 20, ["7"])
    below.reward = 0.4  # right, but under the threshold: not selected
    sft, dpo, chosen = select([worst, best, other_prompt, low, below], s)
    assert [c.trace_id for c in chosen] == ["p-0", "q-0"]
    assert [r["messages"][-1]["content"] for r in sft] == ["A1: it is 7", "agreed, 7", "7"]
    # pairs only where the first prompts are the same text: p, not q
    assert [(d["chosen"][0]["content"], d["rejected"][0]["content"]) for d in dpo] == \
        [("A1: it is 7", "A1: it is 3, because ...")]


def test_no_pair_when_the_gap_is_small_or_the_best_is_wrong():
    s = OptimaSettings(threshold=0.5, min_gap=0.3)
    a, b = conv("p", 0, True, 20, ["7!"]), conv("p", 1, True, 25, ["7"])
    a.reward, b.reward = 0.9, 0.8
    assert select([a, b], s)[1] == []
    c, d = conv("q", 0, False, 20, ["3"]), conv("q", 1, False, 90, ["5"])
    c.reward, d.reward = 0.0, -0.5
    sft, dpo, chosen = select([c, d], s)
    assert sft == [] and dpo == [] and chosen == []


def team_backend(answers: dict[str, str]) -> FakeBackend:
    """Both agents answer right, briefly, in even-numbered conversations and wrong, at length,
    in odd ones; every agent agrees at once, so a conversation is one round of two calls."""
    calls = {"n": 0}

    def reply(request):
        text = request.messages[-1].content
        assert AGENT.search(text), f"unexpected prompt: {text[:200]}"
        conversation, calls["n"] = calls["n"] // 2, calls["n"] + 1
        if conversation % 2 == 0:
            right = next(a for q, a in answers.items() if q in text)
            return json.dumps({"message": "My facts give the total.", "answer": right,
                               "agree": True})
        return json.dumps({"message": "I am not sure at all, let me think about it more and "
                                      "more, maybe it is this one.", "answer": "1",
                           "agree": True})

    return FakeBackend(default=reply)


@pytest.fixture
def team_runtime(store):
    problems = optima_problems(3, seed=5)
    fake = team_backend({p.meta["question"]: p.answer for p in problems})
    settings = load_settings(backend="fake", model="fake", limits=Limits(max_repairs=0))
    return Runtime(settings, backend=fake, store=store, tools={}), problems, fake


def test_conversations_are_generated_graded_and_reused(team_runtime):
    rt, problems, fake = team_runtime
    s = OptimaSettings(samples=2, workers=1)
    convs = generate_conversations(rt, problems, s, tags={"optima_run": "t"})
    assert len(convs) == 6 and all(len(c.calls) == 2 for c in convs)
    assert [c.correct for c in convs] == [True, False] * 3
    first = convs[0].calls[0]
    assert first["turn"] == 1 and first["messages"][-1]["role"] == "user"
    assert json.loads(first["reply"])["agree"] is True
    assert all(r.params.temperature == s.temperature for r in fake.requests)
    sent = len(fake.requests)
    again = generate_conversations(rt, problems, s, tags={"optima_run": "t"})
    assert len(fake.requests) == sent  # finished conversations are read back, not re-run
    assert [c.trace_id for c in again] == [c.trace_id for c in convs]


def test_one_round_end_to_end_on_the_tiny_model(team_runtime, tiny_llama_dir, tmp_path):
    rt, problems, _ = team_runtime
    s = OptimaSettings(samples=2, workers=1, threshold=0.0, min_gap=0.1,
                       sft={"max_steps": 2, "batch_size": 2, "save_steps": 100},
                       dpo={"max_steps": 1, "batch_size": 1, "save_steps": 100})
    out = tmp_path / "round"
    result = optima_round(rt, str(tiny_llama_dir), problems, out, s,
                          base_model=str(tiny_llama_dir), tags={"optima_run": "e2e"})
    assert result["conversations"] == 6 and result["correct"] == 3 and result["selected"] == 3
    assert result["sft_rows"] == 6 and result["dpo_pairs"] == 6  # two agents x three problems
    assert result["path"] == str((out / "dpo").resolve())
    assert (out / "dpo" / "agentrt-version.json").is_file()
    rows = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    assert sum(r["selected"] for r in rows) == 3
    assert all(0.0 < r["readability"] <= 1.0 for r in rows)
    right = [r for r in rows if r["correct"]]
    wrong = [r for r in rows if not r["correct"]]
    assert min(r["reward"] for r in right) > max(r["reward"] for r in wrong)
    # run again: nothing is generated or trained twice
    again = optima_round(rt, str(tiny_llama_dir), problems, out, s,
                         base_model=str(tiny_llama_dir), tags={"optima_run": "e2e"})
    assert again["path"] == result["path"]


def test_gold_conversations_stand_in_where_the_model_solved_nothing(store):
    from agentrt.training.optima import gold_conversations

    problems = optima_problems(2, seed=9)
    fake = FakeBackend(default=json.dumps({"message": "no idea", "answer": "1", "agree": True}))
    settings = load_settings(backend="fake", model="fake", limits=Limits(max_repairs=0))
    rt = Runtime(settings, backend=fake, store=store, tools={})
    s = OptimaSettings(samples=2, workers=1)
    convs = generate_conversations(rt, problems, s, tags={"optima_run": "g"})
    assert not any(c.correct for c in convs)
    for c in convs:
        c.reward = -0.1 * c.sample
    gold = gold_conversations(rt, problems, tags={"optima_run": "g"})
    assert set(gold) == {p.id for p in problems}
    for p in problems:  # share the facts, then calculate and agree on the reference
        g = gold[p.id]
        assert sorted((c["turn"], c["agent"]) for c in g.calls) == [(1, "A1"), (1, "A2"),
                                                                     (2, "A1"), (2, "A2")]
        final = json.loads(g.calls[-1]["reply"])
        assert final["answer"] == p.answer and final["agree"] is True
        assert final["message"].endswith(f"= {p.answer}.")
        assert store.get_trace(g.trace_id).tags["synthetic"] == "gold"
    sft, dpo, chosen = select(convs, s, gold)
    assert chosen == [] and len(sft) == 8  # four calls of each gold conversation
    assert len(dpo) == 4  # each agent's first gold message over the worst conversation's
    assert all(json.loads(d["rejected"][0]["content"])["message"] == "no idea" for d in dpo)
    traces = len(store.list_traces(limit=100))
    assert set(gold_conversations(rt, problems, tags={"optima_run": "g"})) == set(gold)
    assert len(store.list_traces(limit=100)) == traces  # reused, not solved again


def test_gold_pool_conversations_share_then_run_the_program(store):
    from agentrt.training.optima import gold_conversations

    problems = optima_problems(2, seed=9)
    settings = load_settings(backend="fake", model="fake", limits=Limits(max_repairs=0))
    rt = Runtime(settings, backend=FakeBackend(default="unused"), store=store, tools={})
    gold = gold_conversations(rt, problems, tags={"optima_run": "p"}, pattern="pool")
    assert set(gold) == {p.id for p in problems}
    for p in problems:  # each agent shares its facts, then the program runs and prints it
        g = gold[p.id]
        shared = sorted((c["turn"], c["agent"]) for c in g.calls[:2])  # spoken at once
        assert shared == [(1, "A1"), (1, "A2")] and g.calls[2]["agent"] is None
        assert "print(" in json.loads(g.calls[-1]["reply"])["code"]
        trace = store.get_trace(g.trace_id)
        assert trace.answer == p.answer and trace.tool_runs == 1
        assert trace.meta["options"]["pattern"] == "pool"
    convs = [conv(p.id, 0, False, 40, ["a"]) for p in problems]
    sft, dpo, _ = select(convs, OptimaSettings(samples=2), gold)
    assert sorted(r["step"] for r in sft) == ["agent"] * 4 + ["tool"] * 2
    assert dpo == []  # the stand-in conversations' first prompts differ from these


def test_the_loop_refuses_a_bad_optima_setting_before_it_starts():
    from pydantic import ValidationError

    from agentrt.training.config import IterateConfig

    IterateConfig(optima_problems=4, optima={"samples": 2})
    with pytest.raises(ValidationError, match="samples"):
        IterateConfig(optima_problems=4, optima={"samples": 1})
    with pytest.raises(ValidationError, match="unknown_knob"):
        IterateConfig(optima_problems=4, optima={"unknown_knob": 1})


@needs_gsm8k
def test_gsm8k_training_problems_come_from_the_train_split_clear_of_every_test_set():
    from agentrt.core.errors import ConfigError
    from agentrt.data_synth.decontaminate import build_index, decontaminate
    from agentrt.data_synth.split import gsm8k_infox

    problems = optima_problems(12, seed=3, task="gsm8k", data=DATA)
    assert len(problems) == 12 and len({p.id for p in problems}) == 12
    assert all(p.id.startswith("infox-gsm8k-train-") and len(p.meta["agents"]) == 2
               for p in problems)
    assert sum("program" in p.meta for p in problems) >= 10  # the compiled worked solution
    test_texts = {p.text for p in gsm8k_infox(DATA, "test")[0].problems}
    assert not test_texts & {p.text for p in problems}
    assert not decontaminate(problems, build_index(DATA))[1]
    assert {p.id for p in optima_problems(12, seed=4, task="gsm8k", data=DATA)} != {
        p.id for p in problems}
    mixed = optima_problems(5, seed=3, task="mixed", data=DATA)
    assert [p.family for p in mixed] == ["infox", "infox:gsm8k"] * 2 + ["infox"]
    with pytest.raises(ConfigError, match="unknown Optima task"):
        optima_problems(2, seed=1, task="chess")


@needs_gsm8k
@pytest.mark.parametrize("pattern", ["debate", "pool"])
def test_gold_gsm8k_conversations_state_the_worked_calculation(store, pattern):
    from agentrt.training.optima import gold_conversations

    problems = [p for p in optima_problems(6, seed=3, task="gsm8k", data=DATA)
                if "program" in p.meta][:2]
    settings = load_settings(backend="fake", model="fake", limits=Limits(max_repairs=0))
    rt = Runtime(settings, backend=FakeBackend(default="unused"), store=store, tools={})
    gold = gold_conversations(rt, problems, tags={"optima_run": "gsm8k"}, pattern=pattern)
    assert set(gold) == {p.id for p in problems}
    for p in problems:
        last = json.loads(gold[p.id].calls[-1]["reply"])
        if pattern == "pool":  # the compiled program ran in the sandbox and printed the answer
            assert "print(" in last["code"]
            assert float(store.get_trace(gold[p.id].trace_id).answer) == float(p.answer)
        else:  # the calculation in one expression, then the answer everyone agrees on
            assert re.search(r"[-+*/] ?\d", last["message"]) and last["agree"] is True
            assert last["message"].endswith(f"= {p.answer}.")


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--task", "chess"], "invalid Optima setting task"),
    (["--set", "samples=1"], "invalid Optima setting samples"),
    (["--set", "no_such_knob=1"], "invalid Optima setting no_such_knob"),
    (["--set", "samples"], "--set takes key=value"),
    (["--bench", "chess:openings"], "chess"),
])
def test_the_optima_command_refuses_bad_settings_in_one_line(tmp_path, capsys, argv, fragment):
    from agentrt.training.optima_cli import main

    with pytest.raises(SystemExit) as e:
        main([*argv, "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err
    assert err.startswith("error: ") and fragment in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written
