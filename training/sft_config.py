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

from agentrt.training.common import LoraSettings, check_run, settings_dict, trl_args

__all__ = ["SFTSettings"]

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
        check_run(self)
        if self.max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")

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

        return SFTConfig(
            **trl_args(self, output_dir, use_cuda=use_cuda),
            per_device_train_batch_size=self.batch_size, weight_decay=self.weight_decay,
            max_length=self.max_length, assistant_only_loss=False, completion_only_loss=None,
            gradient_checkpointing=self.gradient_checkpointing, remove_unused_columns=True,
            save_only_model=False,
            train_sampling_strategy="group_by_length" if self.group_by_length else "random",
        )
