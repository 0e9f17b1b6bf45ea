"""`GRPOSettings`: reinforcement learning with verifiable rewards, handed to TRL as a `GRPOConfig`.

A step samples `num_generations` completions for each of `batch_size` prompts (the runtime's
own prompts, see `agentrt.training.grpo_data`), scores each with the runtime's graders and normalizes
the scores within each prompt's group (GRPO's advantage). The reward of one completion is

    w_correct * correct + w_format * well_formed - w_tokens * tokens / max_completion_tokens

(`agentrt.training.grpo_rewards`). Defaults are for small models on small machines: LoRA (the KL
reference is then the adapter switched off, no second model in memory), a small KL weight,
short completions, one generation per optimizer step, checkpoints for resume. Settings
validate themselves (`ValueError`, as TRL's configs do). TRL is imported only inside `to_trl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.training.common import LoraSettings, check_run, settings_dict, trl_args

__all__ = ["GRPOSettings"]

_LOSSES = ("grpo", "dr_grpo", "dapo", "bnpo")
_SCALING = ("group", "batch", "none")


@dataclass
class GRPOSettings:
    """GRPO settings.

    Attributes:
        epochs, max_steps, learning_rate, lr_scheduler, warmup_ratio, lora, save_steps,
            save_total_limit, logging_steps, seed, bf16, gradient_checkpointing: as in
            `SFTSettings` (learning_rate None: 2e-5 with LoRA, 1e-6 for full fine-tuning).
        batch_size: prompts per optimizer step (per process).
        num_generations: completions sampled per prompt (the group GRPO compares); >= 2.
        grad_accum: micro-batches one step's `batch_size * num_generations` completions are
            split into for the backward passes (it must divide them).
        temperature, top_p: sampling of the completions.
        max_completion_tokens: tokens per completion (longer ones are cut there).
        beta: weight of the KL penalty against the reference (the starting model); 0 turns
            it off and skips the reference forward pass.
        epsilon: PPO-style clipping of the probability ratio.
        loss_type: TRL's token aggregation ("dapo": over the batch's tokens, no length bias).
        scale_rewards: divide advantages by the reward std of the "group", the "batch" or
            "none" (Dr. GRPO).
        w_correct: reward weight of a right answer (graded like evaluation grades).
        w_format: reward weight of a well-formed reply (a readable, schema-fitting tool call
            the tool accepts; a "Final answer:" line).
        w_tokens: penalty weight of the completion's length, as a share of
            `max_completion_tokens`.
        tool_timeout_s: wall-clock limit of one sandboxed program run while scoring.
        sandbox_workers: programs of one batch run concurrently in the sandbox, at most.
    """

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    num_generations: int = 4
    grad_accum: int = 1
    learning_rate: float | None = None
    lr_scheduler: str = "constant"
    warmup_ratio: float = 0.0
    temperature: float = 1.0
    top_p: float = 1.0
    max_completion_tokens: int = 128
    beta: float = 0.04
    epsilon: float = 0.2
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    w_correct: float = 1.0
    w_format: float = 0.2
    w_tokens: float = 0.1
    tool_timeout_s: float = 5.0
    sandbox_workers: int = 4
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 0
    bf16: bool | None = None
    gradient_checkpointing: bool = False

    def __post_init__(self) -> None:
        check_run(self)
        if self.num_generations < 2:
            raise ValueError("GRPO compares completions of one prompt: num_generations >= 2")
        if (self.batch_size * self.num_generations) % self.grad_accum:
            raise ValueError(f"grad_accum ({self.grad_accum}) must divide batch_size * "
                             f"num_generations ({self.batch_size * self.num_generations})")
        if self.temperature <= 0 or not 0 < self.top_p <= 1:
            raise ValueError("temperature must be > 0 and top_p in (0, 1]: GRPO samples")
        if self.max_completion_tokens < 1:
            raise ValueError("max_completion_tokens must be >= 1")
        if self.beta < 0 or self.epsilon <= 0:
            raise ValueError("beta must be >= 0 and epsilon > 0")
        if self.loss_type not in _LOSSES:
            raise ValueError(f"loss_type must be one of {', '.join(_LOSSES)}")
        if self.scale_rewards not in _SCALING:
            raise ValueError(f"scale_rewards must be one of {', '.join(_SCALING)}")
        if min(self.w_correct, self.w_format, self.w_tokens) < 0:
            raise ValueError("reward weights must be >= 0 (w_tokens is subtracted)")
        if self.w_correct == 0 and self.w_format == 0:
            raise ValueError("w_correct and w_format are both 0: nothing to learn")
        if self.tool_timeout_s <= 0 or self.sandbox_workers < 1:
            raise ValueError("tool_timeout_s must be > 0 and sandbox_workers >= 1")

    @property
    def lr(self) -> float:
        """The learning rate in effect."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-5 if self.lora is not None else 1e-6

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings (what the registry records)."""
        return settings_dict(self)

    def to_trl(self, output_dir: str | Path, *, use_cuda: bool) -> Any:
        """The `trl.GRPOConfig` for a run writing checkpoints under `output_dir`.

        TRL counts completions, not prompts, in its batch sizes: one optimizer step takes
        `batch_size * num_generations` completions in `grad_accum` micro-batches, all sampled
        at once at the start of the step (one generation per step, so it stays on-policy).
        """
        from trl import GRPOConfig  # heavy: trl

        per_device = self.batch_size * self.num_generations // self.grad_accum
        return GRPOConfig(
            **trl_args(self, output_dir, use_cuda=use_cuda),
            per_device_train_batch_size=per_device, num_generations=self.num_generations,
            max_completion_length=self.max_completion_tokens, temperature=self.temperature,
            top_p=self.top_p, top_k=0, beta=self.beta, epsilon=self.epsilon,
            loss_type=self.loss_type, scale_rewards=self.scale_rewards,
            gradient_checkpointing=self.gradient_checkpointing, remove_unused_columns=False,
            log_completions=False,
        )
