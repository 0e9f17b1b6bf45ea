"""Reinforcement learning with verifiable rewards: one function over TRL's `GRPOTrainer`.

    result = train_grpo("models/sft-1", "datasets/grpo-1", "models/grpo-1",
                        GRPOSettings(max_steps=20))

The dataset holds the runtime's own prompts (`agentrt.training.grpo_data`: the exact messages of its
python tool calls and fast answers, with each problem's reference and grader). TRL renders
them with the model's chat template and samples `num_generations` replies each with plain
`generate`; that is faithful because the prompts are the runtime's and the hf backend renders
them the same way. (The runtime may additionally constrain a tool call to its JSON schema
while decoding; sampling here is free, and the reward's "well formed" term teaches the form
instead.) The replies are scored by `agentrt.training.grpo_rewards.RuntimeReward`: programs run in
the sandbox and answers are graded as evaluation grades them.

With LoRA (the default) the KL reference is the adapter switched off. Checkpoints go to
`<out>.work/`, a killed run called again resumes from its newest complete checkpoint, and the
trained model (LoRA merged) is written to `out` atomically, as in `agentrt.training.sft`. This module
knows TRL (imported lazily), not the registry or the pipeline.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.training.compact import compact_trainer_heads
from agentrt.training.common import (
    TrainResult,
    complete_marker,
    last_checkpoint,
    quiet_logs,
    result_from_state,
    save_trained,
)
from agentrt.training.grpo_config import GRPOSettings
from agentrt.training.grpo_rewards import KINDS, RuntimeReward
from agentrt.training.sft import _load_model, load_chat_dataset, work_dir

__all__ = ["train_grpo", "prompt_rows", "grpo_trainer_class"]

_REQUIRED = ("prompt", "step", "reference", "grader")
_KEEP = (*_REQUIRED, "json_schema", "problem")


def prompt_rows(dataset: Any) -> Any:
    """Only the columns the trainer and the reward read (lineage columns dropped).

    Raises:
        ConfigError: a column is missing or a row's call kind has no reward.
    """
    missing = [c for c in _REQUIRED if c not in dataset.column_names]
    if missing:
        raise ConfigError(f"a GRPO dataset needs columns {', '.join(_REQUIRED)}; "
                          f"missing {', '.join(missing)}")
    unknown = sorted(set(dataset["step"]) - set(KINDS))
    if unknown:
        raise ConfigError(f"no reward for calls of kind {', '.join(unknown)}; "
                          f"GRPO rows are {', '.join(KINDS)}")
    return dataset.remove_columns([c for c in dataset.column_names if c not in _KEEP])


def _last_metrics(trainer: Any) -> dict[str, float]:
    """The last logged reward, KL and length figures, for the record."""
    keep = ("reward", "reward_std", "kl", "entropy", "completions/mean_length",
            "completions/clipped_ratio", "reward/correct", "reward/well_formed",
            "reward/tokens", "step_time")
    found: dict[str, float] = {}
    for entry in trainer.state.log_history:
        found.update({k: float(v) for k, v in entry.items()
                      if k in keep and isinstance(v, (int, float)) and math.isfinite(v)})
    return found


def train_grpo(model: str | Path, dataset: Any, out: str | Path,
               settings: GRPOSettings | None = None, *, home: Any = None,
               callbacks: list[Any] | None = None,
               reward: Callable[..., list[float]] | None = None) -> TrainResult:
    """Train `model` with GRPO on the runtime's prompts and save the result to `out`.

    Args:
        model: a saved model directory (or name / registered version) to start from.
        dataset: a saved GRPO dataset directory (`build_grpo_dataset`), a list of rows, or a
            Dataset, with columns prompt, step, reference, grader (json_schema, problem
            optional).
        out: the directory the trained model is written to (must not exist).
        settings: training settings (defaults: `GRPOSettings()`).
        home: agentrt home for the model cache.
        callbacks: extra `transformers.TrainerCallback`s (progress bars).
        reward: a TRL reward function in place of the runtime's graders (tests, experiments).

    Returns:
        Steps, losses, tokens (prompt and sampled), wall time, tokens/s; `extra` has the
        number of prompts and the last logged reward, KL and completion-length figures.

    Raises:
        ConfigError: missing columns, unknown call kinds, or no rows.
        FileExistsError: `out` exists already.

    Example:
        >>> train_grpo("models/sft-1", "data/grpo-1", "models/grpo-1",
        ...            GRPOSettings(max_steps=10))  # doctest: +SKIP
    """
    import torch  # heavy: torch

    settings = settings or GRPOSettings()
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; a trained model is never written over")
    rows = prompt_rows(load_chat_dataset(dataset))
    if len(rows) == 0:
        raise ConfigError("the GRPO dataset has no prompts")
    use_cuda = torch.cuda.is_available()
    net, tokenizer, source = _load_model(model, home, use_cuda)
    work = work_dir(out)
    scorer = reward or RuntimeReward.from_settings(settings)
    adapter = settings.lora.peft_config(net.config.num_hidden_layers) if settings.lora else None
    trainer = grpo_trainer_class()(model=net, reward_funcs=[scorer],
                                   args=settings.to_trl(work, use_cuda=use_cuda),
                                   train_dataset=rows, processing_class=tokenizer,
                                   peft_config=adapter,
                                   callbacks=[complete_marker(), *(callbacks or [])])
    quiet_logs(trainer)
    resume = last_checkpoint(work)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    tokens = int(trainer.state.num_input_tokens_seen or 0)
    meta = {"kind": "grpo", "base": str(model), "source": source, "settings": settings.as_dict()}
    save_trained(trainer, tokenizer, out, meta)
    extra = {"prompts": len(rows), **_last_metrics(trainer)}
    result = result_from_state("grpo", trainer, out, wall, tokens, settings.as_dict(), resume,
                               extra)
    shutil.rmtree(work, ignore_errors=True)
    return result


def grpo_trainer_class() -> Any:
    """`GRPOTrainer` whose policy and reference, on a CPU, project only the sampled replies'
    positions through the output layer (`agentrt.training.compact.compact_fused_head`): TRL's
    fused head without Triton projects every position, the runtime's long prompts included.
    The same log-probabilities and entropies; TRL's own path on GPUs, for scaled or capped
    logits, and with `cast_lm_head_to_fp32`.

    Defined on first use so that importing this module does not import TRL.
    """
    from trl import GRPOTrainer  # heavy: trl

    class CompactGRPOTrainer(GRPOTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            if not self.args.cast_lm_head_to_fp32:
                compact_trainer_heads(self, ("log_probs", "entropy"), self.temperature)

    return CompactGRPOTrainer
