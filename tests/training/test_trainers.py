"""SFT, DPO and HyPO on a tiny random Llama: two steps change the weights, losses stay finite."""

from __future__ import annotations

import json
import math

import pytest

from agentrt.training.common import LoraSettings, last_checkpoint
from agentrt.training.dpo import train_dpo
from agentrt.training.dpo_config import DPOSettings
from agentrt.training.hypo import train_hypo
from agentrt.training.sft import load_chat_dataset, to_prompt_completion, train_sft
from agentrt.training.sft_config import SFTSettings


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def _changed(before, after) -> int:
    return sum(1 for k in before if not before[k].equal(after[k]))


def _sft_rows(n=16):
    return [{"messages": [{"role": "system", "content": "You compute."},
                          {"role": "user", "content": f"What is {i} + {i}?"},
                          {"role": "assistant", "content": f"Final answer: {2 * i}"}],
             "trace_id": f"t{i}", "step": "fast_answer"} for i in range(n)]


def _pairs(n=8):
    return [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
             "chosen": [{"role": "assistant", "content": f"Final answer: {2 * i}"}],
             "rejected": [{"role": "assistant", "content": f"Final answer: {2 * i + 1}"}],
             "kind": "answer"} for i in range(n)]


@pytest.mark.parametrize("lora", [True, False], ids=["lora", "full"])
def test_sft_two_steps_change_the_weights(tiny_llama_dir, tmp_path, lora):
    settings = SFTSettings(max_steps=2, batch_size=4, save_steps=1, logging_steps=1,
                           lora=LoraSettings(r=4, alpha=8) if lora else None,
                           learning_rate=1e-2)
    result = train_sft(tiny_llama_dir, _sft_rows(), tmp_path / "out", settings)
    assert result.steps == 2 and len(result.losses) == 2
    assert all(math.isfinite(x) for x in result.losses) and math.isfinite(result.final_loss)
    assert result.train_tokens > 0 and result.tokens_per_s > 0
    assert result.extra["prompt_completion"] is True  # loss on the replies only
    before, after = _weights(tiny_llama_dir), _weights(tmp_path / "out")
    assert set(before) == set(after)  # LoRA merged back: a plain model of the same shape
    assert _changed(before, after) > 0
    assert not (tmp_path / "out.work").exists()  # checkpoints removed once the model is saved
    meta = json.loads((tmp_path / "out" / "agentrt-version.json").read_text())
    assert meta["kind"] == "sft" and meta["settings"]["max_steps"] == 2


def test_sft_targets_only_the_reply(tiny_llama_dir):
    from datasets import Dataset

    rows, converted = to_prompt_completion(Dataset.from_list(_sft_rows(2)))
    assert converted and rows.column_names == ["prompt", "completion"]
    assert rows[0]["completion"] == [{"role": "assistant", "content": "Final answer: 0"}]
    assert [m["role"] for m in rows[0]["prompt"]] == ["system", "user"]


def _one_batch_loss(trainer, compute, batch):
    """Loss, LoRA gradients and logged metrics of one batch through `compute`."""
    trainer.model.zero_grad()
    for values in trainer._metrics["train"].values():
        values.clear()
    loss = compute(trainer, trainer.model, dict(batch))
    loss.backward()
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if k != "num_tokens"}
    return float(loss.detach()), grads, metrics


def _assert_same_step(mine, trls) -> dict:
    """Two `_one_batch_loss` results agree: loss, every gradient, every logged metric."""
    import torch

    assert mine[0] == pytest.approx(trls[0], rel=1e-5)
    assert set(mine[1]) == set(trls[1]) and len(mine[1]) > 0
    for name, grad in mine[1].items():
        assert torch.allclose(grad, trls[1][name], rtol=1e-4, atol=1e-6), name
    assert mine[2].keys() == trls[2].keys()
    for key, value in mine[2].items():
        assert value == pytest.approx(trls[2][key], rel=1e-4, abs=1e-6), key
    return mine[2]


def test_sft_compact_loss_is_trls_loss(tiny_llama_dir, tmp_path):
    """On a CPU only the labelled positions go through the output layer: same loss, same
    gradients and the same logged metrics as TRL's own compute_loss, which scores them all."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    from agentrt.training.sft import sft_trainer_class

    settings = SFTSettings(max_steps=1, batch_size=4, lora=LoraSettings(r=4, alpha=8))
    data, _ = to_prompt_completion(load_chat_dataset(_sft_rows(8)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    net = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    args = settings.to_trl(tmp_path / "work", use_cuda=False)
    args.completion_only_loss = True
    trainer = sft_trainer_class()(model=net, args=args, train_dataset=data,
                                  processing_class=tokenizer,
                                  peft_config=settings.lora.peft_config(2))
    for _, p in trainer.model.named_parameters():  # LoRA's B starts at zero: move it
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any()  # prompts carry no label
    _assert_same_step(_one_batch_loss(trainer, type(trainer).compute_loss, batch),
                      _one_batch_loss(trainer, SFTTrainer.compute_loss, batch))


def _dpo_trainer(cls, tiny_llama_dir, tmp_path, name):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    settings = DPOSettings(max_steps=1, batch_size=4, lora=LoraSettings(r=4, alpha=8))
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    net = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    trainer = cls(model=net, args=settings.to_trl(tmp_path / name, use_cuda=False),
                  train_dataset=load_chat_dataset(_pairs()), processing_class=tokenizer,
                  peft_config=settings.lora.peft_config(2))
    torch.manual_seed(0)
    for _, p in trainer.model.named_parameters():  # LoRA's B starts at zero: move it
        if p.requires_grad:
            torch.nn.init.normal_(p, std=0.05)
    return trainer


def test_dpo_compact_head_is_trls(tiny_llama_dir, tmp_path):
    """On a CPU the DPO trainer's policy and reference score only the replies: the same loss,
    gradients and logged metrics as TRL's trainer, which scores every position."""
    import torch
    from trl import DPOTrainer

    from agentrt.training.dpo import dpo_trainer_class
    from agentrt.training.hypo import sequence_logps

    mine = _dpo_trainer(dpo_trainer_class(), tiny_llama_dir, tmp_path, "mine")
    trls = _dpo_trainer(DPOTrainer, tiny_llama_dir, tmp_path, "trl")
    assert mine.model.get_base_model().forward.__module__.endswith("training.compact")
    batch = next(iter(mine.get_train_dataloader()))
    assert (batch["completion_mask"] == 0).any()  # prompts and padding carry no label
    metrics = _assert_same_step(_one_batch_loss(mine, type(mine).compute_loss, batch),
                                _one_batch_loss(trls, DPOTrainer.compute_loss, batch))
    assert "mean_token_accuracy" in metrics
    # HyPO's sequence scores through the compact head are the full logits' sums
    ids, attention = batch["input_ids"], batch["attention_mask"]
    sample = {"input_ids": ids, "attention_mask": attention,
              "completion_mask": batch["completion_mask"] * attention}
    with torch.no_grad():
        got = sequence_logps(mine.model, sample)
        logits = trls.model(input_ids=ids, attention_mask=attention).logits[:, :-1]
        full = torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
    assert torch.allclose(got, (full * sample["completion_mask"][:, 1:]).sum(1), atol=1e-4)


def test_sft_refuses_to_overwrite_and_bad_data(tiny_llama_dir, tmp_path):
    from agentrt.core.errors import ConfigError

    (tmp_path / "taken").mkdir()
    with pytest.raises(FileExistsError):
        train_sft(tiny_llama_dir, _sft_rows(), tmp_path / "taken", SFTSettings(max_steps=1))
    with pytest.raises(ConfigError, match="messages"):
        train_sft(tiny_llama_dir, [{"text": "x"}], tmp_path / "o", SFTSettings(max_steps=1))
    with pytest.raises(ValueError, match="lr_scheduler"):
        SFTSettings(lr_scheduler="exotic")


@pytest.mark.parametrize("trainer", [train_dpo, train_hypo], ids=["dpo", "hypo"])
def test_preference_two_steps_change_the_weights(tiny_llama_dir, tmp_path, trainer):
    settings = DPOSettings(max_steps=2, batch_size=4, save_steps=1, logging_steps=1,
                           learning_rate=1e-2, kl_samples=2, kl_max_tokens=6,
                           kl_refresh_steps=1, kl_coef=0.5)
    result = trainer(tiny_llama_dir, _pairs(), tmp_path / "out", settings)
    assert result.steps == 2 and all(math.isfinite(x) for x in result.losses)
    assert math.isfinite(result.final_loss) and result.extra["pairs"] == 8
    before, after = _weights(tiny_llama_dir), _weights(tmp_path / "out")
    assert _changed(before, after) > 0
    if trainer is train_hypo:
        assert result.extra["kl_refreshes"] == 2  # fresh on-policy samples at each step
        assert math.isfinite(result.extra["hypo/kl"])
    assert "rewards/accuracies" in result.extra


def test_partial_checkpoints_are_never_resumed_from(tmp_path):
    work = tmp_path / "w"
    for step, complete in ((1, True), (2, True), (3, False)):
        d = work / f"checkpoint-{step}"
        d.mkdir(parents=True)
        (d / "trainer_state.json").write_text("{}")
        if complete:
            (d / "agentrt-complete.json").write_text('{"step": %d}' % step)
    assert last_checkpoint(work) == str(work / "checkpoint-2")
    assert not (work / "checkpoint-3").exists()  # the partial one is removed
    assert last_checkpoint(tmp_path / "none") is None


def test_lora_on_the_top_layers_leaves_the_lower_ones_untouched(tiny_llama_dir, tmp_path):
    settings = SFTSettings(max_steps=2, batch_size=4, save_steps=2, logging_steps=1,
                           lora=LoraSettings(r=4, alpha=8, top_layers=1), learning_rate=1e-2)
    result = train_sft(tiny_llama_dir, _sft_rows(), tmp_path / "out", settings)
    assert all(math.isfinite(x) for x in result.losses)
    before, after = _weights(tiny_llama_dir), _weights(tmp_path / "out")
    changed = {k for k in before if not before[k].equal(after[k])}
    top = max(int(k.split(".")[2]) for k in before if k.startswith("model.layers."))
    assert changed and all(k.startswith(f"model.layers.{top}.") for k in changed), changed


def test_lora_top_layers_must_be_positive():
    with pytest.raises(ValueError, match="top_layers"):
        LoraSettings(top_layers=0)
