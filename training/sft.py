"""Supervised fine-tuning: one function over TRL's `SFTTrainer`.

    result = train_sft("smollm2-135m", "datasets/sft-1", "models/v2", SFTSettings(max_steps=50))

The dataset is one saved by `agentrt.data_synth.compile` (`datasets.save_to_disk`, a `messages`
column: the exact prompt the runtime sent, then the reply). Loss is on the replies only: rows
whose single assistant message is the last one (every SFT row the compilers write) become
TRL prompt-completion rows, rendered with the model's own chat template, so training sees the
very tokens inference sees; rows with several assistant turns need a chat template with
`{% generation %}` markers and use TRL's `assistant_only_loss`.

On a CPU only the labelled positions go through the output layer (`sft_trainer_class`; TRL
projects every position there, which doubled a step's time); the loss is TRL's.

Checkpoints go to `<out>.work/`; a killed run called again with the same arguments resumes
from the newest complete checkpoint (TRL `resume_from_checkpoint`). The trained model, LoRA
merged, is written to `out` atomically (see `agentrt.training.common.save_model_atomic`), and
the work directory is removed. This module knows TRL, transformers and peft (imported lazily).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.llm.models import CHATML_TEMPLATE, model_not_found, resolve_model
from agentrt.training.common import (
    TrainResult,
    complete_marker,
    last_checkpoint,
    quiet_logs,
    result_from_state,
    save_trained,
)
from agentrt.training.compact import label_fields, plain_head
from agentrt.training.sft_config import SFTSettings

__all__ = ["train_sft", "load_chat_dataset", "to_prompt_completion", "work_dir",
           "sft_trainer_class"]


def work_dir(out: str | Path) -> Path:
    """Where a run's checkpoints live until its model is saved."""
    out = Path(out)
    return out.parent / f"{out.name}.work"


def load_chat_dataset(data: Any) -> Any:
    """A `datasets.Dataset` from a saved dataset directory, a list of rows, or a Dataset.

    Raises:
        ConfigError: no such directory, or one that is not a saved dataset.
    """
    from datasets import Dataset, load_from_disk  # heavy: datasets

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (list, tuple)):
        return Dataset.from_list(list(data))
    path = Path(data)
    if not path.is_dir():
        raise ConfigError(f"no dataset directory at {path}")
    try:
        return load_from_disk(str(path))
    except (FileNotFoundError, ValueError, OSError) as e:  # not a saved dataset, or damaged
        raise ConfigError(f"{path} is not a saved dataset (datasets.save_to_disk): "
                          f"{str(e).splitlines()[0][:300]}") from None


def _single_reply(messages: list[dict[str, Any]]) -> bool:
    roles = [m["role"] for m in messages]
    return bool(roles) and roles[-1] == "assistant" and roles.count("assistant") == 1


def to_prompt_completion(dataset: Any) -> tuple[Any, bool]:
    """Rows as TRL prompt/completion pairs when each has one final reply; (dataset, converted)."""
    if "messages" not in dataset.column_names:
        raise ConfigError(f"an SFT dataset needs a 'messages' column; it has "
                          f"{', '.join(dataset.column_names)}")
    extra = [c for c in dataset.column_names if c != "messages"]
    dataset = dataset.remove_columns(extra)
    if not all(_single_reply(m) for m in dataset["messages"]):
        return dataset, False

    def split(row: dict[str, Any]) -> dict[str, Any]:
        msgs = row["messages"]
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}

    return dataset.map(split, remove_columns=["messages"]), True


def _compact_applies(trainer: Any, model: Any, inputs: dict[str, Any],
                     return_outputs: bool) -> bool:
    """Whether the compact loss gives exactly what TRL's own `compute_loss` would: plain NLL,
    one process, unscaled logits, on a device without Triton (where TRL scores every
    position)."""
    if trainer.accelerator.num_processes != 1:  # the model is wrapped (DDP, FSDP): TRL's path
        return False
    device = next(model.parameters()).device
    return (device.type == "cpu" and not return_outputs and "labels" in inputs
            and plain_head(model.config)
            and "shift_labels" not in inputs and trainer.compute_loss_func is None
            and trainer.label_smoother is None and trainer.args.loss_type == "nll"
            and not trainer.aux_loss_enabled)


def sft_trainer_class() -> Any:
    """`SFTTrainer` whose loss, on a CPU, projects only the positions that carry a label.

    TRL's fused LM head scores only the labelled positions where Triton runs; elsewhere it
    projects every position through the 49,152-wide output layer in tiles, twice (the backward
    recomputes them), prompts and padding included. With the loss on replies only that is
    most of a CPU step: a batch of the `cpu` preset's rows (1,784 tokens, 337 labelled) took
    25.5 s for loss and backward through TRL's path against 8.7 s here
    (benchmarks/bench_sft_loss.py). The loss, the entropy and token-accuracy metrics and the
    token count are TRL's; everything else (other losses, GPUs, several processes) is TRL's own
    `compute_loss`.

    Defined on first use so that importing this module does not import TRL.
    """
    import torch  # heavy: torch
    from trl import SFTTrainer  # heavy: trl

    class CompactSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not _compact_applies(self, model, inputs, return_outputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            net = model.get_base_model() if hasattr(model, "get_base_model") else model
            backbone = getattr(net, net.base_model_prefix)
            given = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids")
                     if k in inputs}
            hidden = backbone(**given, use_cache=False).last_hidden_state[:, :-1]
            targets = inputs["labels"][:, 1:]
            mask = targets != -100
            rows = label_fields(net.get_output_embeddings(), hidden[mask], targets[mask],
                                ("log_probs", "entropy", "is_top1"))
            valid = mask.sum()
            count = valid if num_items_in_batch is None else num_items_in_batch
            loss = -rows["log_probs"].sum() / torch.as_tensor(count).clamp(min=1)
            self._log_compact(inputs, rows, int(valid))
            return loss

        def _log_compact(self, inputs: dict[str, Any], rows: dict[str, Any],
                         valid: int) -> None:
            metrics = self._metrics["train" if self.model.training else "eval"]
            entropy, correct = rows["entropy"].sum(), rows["is_top1"].sum()
            metrics["entropy"].append(float(entropy) / valid if valid else 0.0)
            metrics["mean_token_accuracy"].append(float(correct) / valid if valid else 0.0)
            if self.model.training:
                seen = inputs.get("attention_mask")
                self._total_train_tokens += (int(seen.sum()) if seen is not None
                                             else inputs["input_ids"].numel())
            metrics["num_tokens"] = [self._total_train_tokens]

    return CompactSFTTrainer


def _load_model(model: str | Path, home: Any, use_cuda: bool) -> tuple[Any, Any, str]:
    import torch  # heavy: torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers

    path = resolve_model(str(model), home, progress=False)
    dtype = torch.bfloat16 if use_cuda else torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        net = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except (OSError, ValueError) as e:  # a hub id out of reach, a damaged directory
        raise model_not_found(path, (str(e).strip().splitlines() or [""])[0][:300]) from None
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return net, tokenizer, path


def train_sft(model: str | Path, dataset: Any, out: str | Path,
              settings: SFTSettings | None = None, *, home: Any = None,
              callbacks: list[Any] | None = None) -> TrainResult:
    """Fine-tune `model` on a chat dataset and save the result to `out`.

    Args:
        model: a model name, directory or registered version (see `resolve_model`).
        dataset: a saved dataset directory, a list of `{"messages": [...]}` rows, or a Dataset.
        out: the directory the trained model is written to (must not exist).
        settings: training settings (defaults: `SFTSettings()`).
        home: agentrt home for the model cache.
        callbacks: extra `transformers.TrainerCallback`s (progress bars).

    Returns:
        Steps, losses, tokens, wall time and tokens/s; `path` is `out`.

    Raises:
        ConfigError: no dataset, no `messages`, or an empty dataset.
        FileExistsError: `out` exists already.

    Example:
        >>> train_sft("smollm2-135m", "data/sft-1", "models/sft-1",
        ...           SFTSettings(max_steps=20))  # doctest: +SKIP
    """
    import torch  # heavy: torch

    settings = settings or SFTSettings()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; a trained model is never written over")
    data, converted = to_prompt_completion(load_chat_dataset(dataset))
    if len(data) == 0:
        raise ConfigError("the SFT dataset has no rows")
    use_cuda = torch.cuda.is_available()
    net, tokenizer, source = _load_model(model, home, use_cuda)
    work = work_dir(out)
    args = settings.to_trl(work, use_cuda=use_cuda)
    args.assistant_only_loss = settings.assistant_only_loss and not converted
    args.completion_only_loss = True if converted and settings.assistant_only_loss else None
    peft = settings.lora.peft_config(net.config.num_hidden_layers) if settings.lora else None
    trainer = sft_trainer_class()(model=net, args=args, train_dataset=data,
                                  processing_class=tokenizer, peft_config=peft,
                                  callbacks=[complete_marker(), *(callbacks or [])])
    quiet_logs(trainer)
    resume = last_checkpoint(work)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    tokens = int(getattr(trainer, "_total_train_tokens", 0))
    meta = {"kind": "sft", "base": str(model), "source": source, "settings": settings.as_dict()}
    save_trained(trainer, tokenizer, out, meta)
    result = result_from_state("sft", trainer, out, wall, tokens, settings.as_dict(), resume,
                               {"rows": len(data), "prompt_completion": converted})
    shutil.rmtree(work, ignore_errors=True)
    return result
