"""GRPO: settings, the runtime's rewards, prompts from stored traces, and training steps on a
tiny random Llama."""

from __future__ import annotations

import json
import math

import pytest

from agentrt.core.types import Problem
from agentrt.training.common import LoraSettings
from agentrt.training.grpo import train_grpo
from agentrt.training.grpo_config import GRPOSettings
from agentrt.training.grpo_rewards import RuntimeReward, score_reply

_SCHEMA = json.dumps({"type": "object", "required": ["code"], "additionalProperties": False,
                      "properties": {"code": {"type": "string",
                                              "pattern": r"^print\([0-9+\-*/%(). ]{1,100}\)$"}}})


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _reward_of(texts, step, reference="5076", schema=_SCHEMA, tokens=8):
    """The reward TRL would get for `texts`, called the way GRPOTrainer calls it."""
    reward = RuntimeReward(max_tokens=16)
    logged = {}
    n = len(texts)
    out = reward(prompts=[[{"role": "user", "content": "q"}]] * n,
                 completions=[[{"role": "assistant", "content": t}] for t in texts],
                 completion_ids=[[1] * tokens] * n, step=[step] * n, reference=[reference] * n,
                 grader=["numeric"] * n, json_schema=[schema] * n,
                 problem=["Compute 16 + 92 * 55."] * n, log_metric=logged.__setitem__)
    return out, logged


def test_settings_validate_themselves():
    for bad in (dict(num_generations=1), dict(batch_size=3, num_generations=2, grad_accum=4),
                dict(w_tokens=-1), dict(w_correct=0, w_format=0), dict(loss_type="exotic"),
                dict(temperature=0), dict(max_steps=-1, epochs=0), dict(scale_rewards="some")):
        with pytest.raises(ValueError):
            GRPOSettings(**bad)
    s = GRPOSettings(batch_size=3, num_generations=4, grad_accum=2, lora={"r": 4, "alpha": 8})
    assert isinstance(s.lora, LoraSettings) and s.as_dict()["learning_rate"] == s.lr
    args = s.to_trl("/tmp/unused", use_cuda=False)
    # TRL counts completions: 3 prompts x 4 samples per step, in 2 micro-batches of 6.
    assert args.per_device_train_batch_size == 6 and args.gradient_accumulation_steps == 2
    assert args.generation_batch_size == 12 and args.num_generations == 4
    assert args.remove_unused_columns is False  # the reward reads the extra columns


def test_reward_ranks_right_wrong_and_garbage_programs():
    rewards, logged = _reward_of(['{"code": "print(16 + 92 * 55)"}',  # right
                                  '{"code": "print(16 + 92 * 56)"}',  # runs, wrong answer
                                  '{"code": "print(16 + 92 *"}',     # syntax error
                                  'print it: 5076 maybe'], "tool_input")  # no call at all
    right, wrong, broken, garbage = rewards
    assert right == pytest.approx(1.0 + 0.2 - 0.1 * 8 / 16)  # correct, well formed, 8 tokens
    assert wrong == pytest.approx(0.2 - 0.05)
    assert broken == garbage == pytest.approx(-0.05)  # the format penalty: no format reward
    assert logged["reward/correct"] == 0.25 and logged["reward/well_formed"] == 0.5


def test_reward_follows_the_schema_the_runtime_sent():
    problem = Problem(id="p", text="Compute 16 + 92 * 55.", answer="5076", grader="numeric")
    named = '{"code": "a = 92 * 55; b = 16 + a; print(b)"}'
    strict = score_reply(named, "tool_input", problem, schema=_SCHEMA)
    assert strict.correct and not strict.well_formed  # right, but not what the schema admits
    assert score_reply(named, "tool_input", problem, schema=None).well_formed
    chatty = score_reply('Sure! {"code": "print(16 + 92 * 55)"}', "tool_input", problem)
    assert chatty.correct and not chatty.well_formed  # read, but not a bare JSON call
    loop = score_reply('{"code": "while True: pass"}', "tool_input", problem, timeout_s=0.5)
    assert not loop.correct and "timed out" in loop.why  # run in the sandbox, killed there


def test_reward_grades_fast_answers_like_the_runtime():
    rewards, _ = _reward_of(["92 * 55 = 5060, plus 16.\nFinal answer: 5076",
                             "Final answer: 5077", "5076"], "fast_answer", schema="")
    assert rewards[0] > 1.0 > rewards[2] > rewards[1]  # last line read, but no answer line
    with pytest.raises(ValueError, match="kind"):
        score_reply("x", "judge", Problem(id="p", text="t", answer="1", grader="numeric"))


def test_grpo_prompts_are_the_runtime_calls_of_gold_traces(tmp_path, smollm2_dir):
    from datasets import load_from_disk

    from agentrt.core.config import load_settings
    from agentrt.llm.fake import FakeBackend
    from agentrt.runtime import Runtime
    from agentrt.data_synth.generators import generate
    from agentrt.data_synth.teacher import gold_traces
    from agentrt.training.grpo_data import build_grpo_dataset

    settings = load_settings(backend="hf", model="smollm2-135m", home=tmp_path,
                             database_url=f"sqlite:///{tmp_path / 'g.db'}")
    rt = Runtime(settings, backend=FakeBackend())
    report = gold_traces(generate("arithmetic", 2, seed=8, difficulty=1), store=rt.store,
                         settings=settings, mode="both")
    for t in report.trace_ids:
        rt.store.tag(t, split="train", iterate_run="r")
    kw = dict(tags={"iterate_run": "r", "split": "train"}, out=tmp_path / "grpo", name="r-grpo",
              tokenizer=str(smollm2_dir), max_prompt_tokens=1024)
    record = build_grpo_dataset(rt.store, **kw)
    assert record.kind == "grpo" and record.meta["steps"] == {"fast_answer": 2, "tool_input": 2}
    rows = load_from_disk(record.path)
    reward = RuntimeReward(max_tokens=64)
    for row in rows:
        step = rt.store.get_trace(row["trace_id"]).steps
        call = next(s for s in step if s.id == row["step_id"])
        assert row["prompt"] == [{"role": m["role"], "content": m["content"]}
                                 for m in call.inputs["messages"]]  # exactly what was sent
        assert row["reference"] and row["grader"] == "numeric"
        assert bool(row["json_schema"]) == (row["step"] == "tool_input")
        gold = score_reply(call.outputs["text"], row["step"],
                           Problem(id="p", text=row["problem"], answer=row["reference"],
                                   grader=row["grader"]),
                           schema=row["json_schema"], tool=reward.tool)
        assert gold.correct and gold.well_formed, (row["step"], gold)  # gold earns it all
    assert build_grpo_dataset(rt.store, **kw).id == record.id  # a resumed stage reuses it
    assert build_grpo_dataset(rt.store, **{**kw, "tags": {"iterate_run": "none"},
                                           "name": "n", "out": tmp_path / "n"}) is None
    rt.close()


def _rows(n=4):
    rows = []
    for i in range(n):
        rows.append({"prompt": [{"role": "user", "content": f"Compute {i} + {i}."}],
                     "step": "fast_answer", "reference": str(2 * i), "grader": "numeric",
                     "problem": f"Compute {i} + {i}.", "json_schema": "", "trace_id": f"t{i}"})
        rows.append({"prompt": [{"role": "user", "content": f"Write a python call for {i}*3."}],
                     "step": "tool_input", "reference": str(3 * i), "grader": "numeric",
                     "problem": f"Compute {i} * 3.", "json_schema": _SCHEMA, "trace_id": f"t{i}"})
    return rows


def _digits(completions, **_):
    """A reward a random model's samples differ in (the runtime's is flat for them)."""
    texts = [c[-1]["content"] for c in completions]
    return [sum(ch.isdigit() or ch.isspace() for ch in t) / max(len(t), 1) for t in texts]


def test_grpo_two_steps_change_the_weights(tiny_llama_dir, tmp_path):
    settings = GRPOSettings(max_steps=2, batch_size=2, num_generations=2,
                            max_completion_tokens=6, learning_rate=5e-2, save_steps=1,
                            logging_steps=1, lora=LoraSettings(r=4, alpha=8))
    result = train_grpo(tiny_llama_dir, _rows(), tmp_path / "out", settings, reward=_digits)
    assert result.kind == "grpo" and result.steps == 2 and len(result.losses) == 2
    assert all(math.isfinite(x) for x in result.losses) and math.isfinite(result.final_loss)
    assert result.train_tokens > 0 and result.extra["prompts"] == 8
    before, after = _weights(tiny_llama_dir), _weights(tmp_path / "out")
    assert set(before) == set(after)  # LoRA merged back
    assert sum(not before[k].equal(after[k]) for k in before) > 0
    assert not (tmp_path / "out.work").exists()
    meta = json.loads((tmp_path / "out" / "agentrt-version.json").read_text())
    assert meta["kind"] == "grpo" and meta["settings"]["num_generations"] == 2


def test_grpo_step_with_the_runtime_reward(tiny_llama_dir, tmp_path):
    settings = GRPOSettings(max_steps=1, batch_size=4, num_generations=2,
                            max_completion_tokens=4, save_steps=1, logging_steps=1,
                            lora=LoraSettings(r=4, alpha=8))
    result = train_grpo(tiny_llama_dir, _rows(), tmp_path / "out", settings)
    assert result.steps == 1 and all(math.isfinite(x) for x in result.losses)
    # Random text: no call, no answer line; every sample is cut at 4 tokens.
    assert result.extra["reward/well_formed"] == 0.0 and result.extra["reward/tokens"] == 1.0
    assert result.extra["reward"] == pytest.approx(-0.1)


def test_grpo_refuses_rows_it_cannot_score(tiny_llama_dir, tmp_path):
    from agentrt.core.errors import ConfigError

    with pytest.raises(ConfigError, match="reference"):
        train_grpo(tiny_llama_dir, [{"prompt": [], "step": "fast_answer", "grader": "numeric"}],
                   tmp_path / "a", GRPOSettings(max_steps=1))
    with pytest.raises(ConfigError, match="judge"):
        train_grpo(tiny_llama_dir, [{**_rows(1)[0], "step": "judge"}], tmp_path / "b",
                   GRPOSettings(max_steps=1))
    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        train_grpo(tiny_llama_dir, _rows(), tmp_path / "taken", GRPOSettings(max_steps=1))


def test_grpo_compact_head_is_trls(tiny_llama_dir, tmp_path):
    """On a CPU the GRPO trainer's policy scores only the sampled replies' positions: the same
    log-probabilities, entropies and gradients as TRL's trainer, which projects every position
    (left-padded prompts of different lengths, replies with padding after them)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOTrainer

    from agentrt.training.grpo import grpo_trainer_class, prompt_rows
    from agentrt.training.sft import load_chat_dataset

    settings = GRPOSettings(max_steps=1, batch_size=2, num_generations=2,
                            max_completion_tokens=6, lora=LoraSettings(r=4, alpha=8),
                            temperature=0.7)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token

    def trainer(cls, name):
        net = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
        made = cls(model=net, reward_funcs=[_digits],
                   args=settings.to_trl(tmp_path / name, use_cuda=False),
                   train_dataset=prompt_rows(load_chat_dataset(_rows())),
                   processing_class=tokenizer, peft_config=settings.lora.peft_config(2))
        torch.manual_seed(0)
        for _, p in made.model.named_parameters():  # LoRA's B starts at zero: move it
            if p.requires_grad:
                torch.nn.init.normal_(p, std=0.05)
        return made

    mine, trls = trainer(grpo_trainer_class(), "mine"), trainer(GRPOTrainer, "trl")
    assert mine.model.get_base_model().forward.__module__.endswith("training.compact")
    ids = torch.tensor([[0, 0, 5, 6, 7, 8, 9, 10], [3, 4, 5, 6, 7, 8, 11, 0]])
    attention = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1, 1, 0]])
    found = []
    for t in (mine, trls):
        t.model.zero_grad()
        logps, entropies, _ = t._get_per_token_logps_and_entropies(
            t.model, ids, attention, 3, compute_entropy=True)
        (logps * attention[:, -3:]).sum().backward()
        grads = {n: p.grad.clone() for n, p in t.model.named_parameters() if p.grad is not None}
        found.append((logps.detach(), entropies.detach(), grads))
    (lp1, en1, g1), (lp2, en2, g2) = found
    mask = attention[:, -3:].bool()
    assert lp1.shape == lp2.shape == (2, 3)
    assert torch.allclose(lp1[mask], lp2[mask], atol=1e-5)
    assert torch.allclose(en1[mask], en2[mask], atol=1e-5)
    assert g1.keys() == g2.keys() and g1
    assert all(torch.allclose(g1[k], g2[k], atol=1e-5, rtol=1e-4) for k in g1)
