"""`DPOSettings`: preference training with our defaults, handed to TRL as a `DPOConfig`.

The same settings serve plain DPO (`agentrt.training.dpo`) and the hybrid preference step
(`agentrt.training.hypo`): the `kl_*` fields size HyPO's KL term on fresh on-policy samples and are
ignored by plain DPO. Defaults: LoRA (the reference model is then the adapter switched off, so
no second copy of the model is loaded), sigmoid DPO loss with beta 0.1, checkpoints for resume.
Settings validate themselves (`ValueError`). TRL is imported only inside `to_trl`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.training.common import LoraSettings, check_run, settings_dict, trl_args

__all__ = ["DPOSettings"]


@dataclass
class DPOSettings:
    """Preference-training settings.

    Attributes:
        epochs, max_steps, batch_size, grad_accum, learning_rate, lr_scheduler, warmup_ratio,
            max_length, lora, save_steps, save_total_limit, logging_steps, seed, bf16: as in
            `SFTSettings` (learning_rate None: 5e-5 with LoRA, 5e-7 for full fine-tuning).
        beta: DPO's inverse temperature (how far the policy may move from the reference).
        loss_type: TRL's DPO loss ("sigmoid" is the original DPO loss).
        kl_coef: HyPO's weight of the KL term (0 turns HyPO into plain DPO).
        kl_samples: on-policy samples drawn per refresh (one per prompt).
        kl_max_tokens: tokens per on-policy sample.
        kl_refresh_steps: optimizer steps between fresh samples.
        kl_temperature: sampling temperature of the on-policy samples.
    """

    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    learning_rate: float | None = None
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.0
    max_length: int = 1024
    lora: LoraSettings | None = field(default_factory=LoraSettings)
    beta: float = 0.1
    loss_type: str = "sigmoid"
    save_steps: int = 50
    save_total_limit: int = 2
    logging_steps: int = 5
    seed: int = 0
    bf16: bool | None = None
    kl_coef: float = 0.05
    kl_samples: int = 4
    kl_max_tokens: int = 64
    kl_refresh_steps: int = 4
    kl_temperature: float = 1.0

    def __post_init__(self) -> None:
        check_run(self)
        if self.beta <= 0:
            raise ValueError("beta must be > 0")
        if self.kl_coef < 0 or self.kl_samples < 1 or self.kl_max_tokens < 1:
            raise ValueError("kl_coef must be >= 0; kl_samples and kl_max_tokens >= 1")
        if self.kl_refresh_steps < 1 or self.kl_temperature <= 0:
            raise ValueError("kl_refresh_steps must be >= 1 and kl_temperature > 0")
        if self.max_length < 16:
            raise ValueError("max_length must be at least 16 tokens")

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 5e-5 if self.lora is not None else 5e-7

    def as_dict(self) -> dict[str, Any]:
        return settings_dict(self)

    def to_trl(self, output_dir: str | Path, *, use_cuda: bool) -> Any:
        """The `trl.DPOConfig` for a run writing checkpoints under `output_dir`."""
        from trl import DPOConfig  # heavy: trl

        return DPOConfig(
            **trl_args(self, output_dir, use_cuda=use_cuda),
            per_device_train_batch_size=self.batch_size, max_length=self.max_length,
            beta=self.beta, loss_type=[self.loss_type], gradient_checkpointing=False,
        )
