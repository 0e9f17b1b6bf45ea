"""`SFTSettings`: supervised fine-tuning with our defaults, handed to TRL as an `SFTConfig`.

Defaults are for small models on small machines: LoRA on every linear layer (full fine-tuning
with `lora=None`), loss on the assistant replies only, cosine schedule with a short warm-up,
a checkpoint every `save_steps` so a killed run resumes, no hub, no external loggers. The
settings validate themselves (`ValueError` on inconsistent values, as TRL's configs do) and
serialize to a plain dict that the model registry stores with each version.
This module imports TRL only inside `to_trl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.training.common import LoraSettings, settings_dict

__all__ = ["SFTSettings"]

_SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


@dataclass
class SFTSettings:
    """Supervised fine-tuning settings.

    Attributes:
        epochs: passes over the data (fractions allowed); ignored when `max_steps` > 0.
        max_steps: stop after this many optimizer steps (-1: run `epochs`).
        batch_size: sequences per device per step.
        grad_accum: micro-batches accumulated per optimizer step.
        learning_rate: None picks 2e-4 with LoRA, 2e-5 for full fine-tuning.
        lr_scheduler: "linear", "cosine", "constant" or "constant_with_warmup".
        warmup_ratio: share of the steps spent warming up.
        weight_decay: AdamW weight decay.
        max_length: longer sequences are truncated (their end is dropped).
        lora: adapter settings; None trains every weight.
        group_by_length: batch rows of similar length together (less padding to compute).
        assistant_only_loss: loss on assistant replies only (prompts are context, not targets).
        save_steps: steps between resumable checkpoints.
        save_total_limit: checkpoints kept.
        logging_steps: steps between loss logs.
        seed: data order and initialization seed.
        gradient_checkpointing: trade compute for memory (large models on GPUs).
        bf16: bfloat16 mixed precision; None uses it on CUDA GPUs that support it.
    """

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 8
    grad_accum: int = 1
    learning_rate: float | None = None
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0
    max_length: int = 1024
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    group_by_length: bool = True
    assistant_only_loss: bool = True
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 0
    gradient_checkpointing: bool = False
    bf16: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.lora, dict):
            self.lora = LoraSettings(**self.lora)
        if self.epochs <= 0 and self.max_steps <= 0:
            raise ValueError("give a positive number of epochs or of max_steps")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be >= 1")
        if self.learning_rate is not None and not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate}")
        if self.lr_scheduler not in _SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {', '.join(_SCHEDULERS)}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError("warmup_ratio must be in [0, 1)")
        if self.max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")
        if self.save_steps < 1 or self.logging_steps < 1 or self.save_total_limit < 1:
            raise ValueError("save_steps, save_total_limit and logging_steps must be >= 1")

    @property
    def lr(self) -> float:
        """The learning rate in effect."""
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora is not None else 2e-5

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready settings (what the registry records)."""
        return settings_dict(self)

    def to_trl(self, output_dir: str | Path, *, use_cuda: bool) -> Any:
        """The `trl.SFTConfig` for a run writing checkpoints under `output_dir`."""
        from trl import SFTConfig  # heavy: trl

        bf16 = use_cuda if self.bf16 is None else self.bf16
        return SFTConfig(
            output_dir=str(output_dir), num_train_epochs=self.epochs, max_steps=self.max_steps,
            per_device_train_batch_size=self.batch_size,
            gradient_accumulation_steps=self.grad_accum, learning_rate=self.lr,
            lr_scheduler_type=self.lr_scheduler, warmup_steps=self.warmup_ratio,
            weight_decay=self.weight_decay, max_length=self.max_length,
            assistant_only_loss=False, completion_only_loss=None,
            save_strategy="steps", save_steps=self.save_steps,
            save_total_limit=self.save_total_limit, logging_steps=self.logging_steps,
            seed=self.seed, data_seed=self.seed, gradient_checkpointing=self.gradient_checkpointing,
            bf16=bf16, use_cpu=not use_cuda, report_to="none", disable_tqdm=True,
            dataloader_num_workers=0, remove_unused_columns=True, save_only_model=False,
            train_sampling_strategy="group_by_length" if self.group_by_length else "random",
        )
