"""The hybrid preference step, after HyPO: DPO on offline pairs plus a KL term on fresh
on-policy samples.

Why HyPO and not online iterative DPO: the preference pairs come from verified traces (right
against wrong replies to the same prompt) and are cheap; what offline DPO lacks is control of
the policy where the pairs do not reach, which is what the KL term on the policy's own samples
supplies (Song et al., 2024, "The Importance of Online Data: Understanding Preference
Fine-tuning via Coverage"). It needs samples, not labels: no reward model, no grader in the
training loop, and a few short samples per refresh are affordable on a CPU, where online DPO's
fresh labelled pairs (full solves, graded) every round are not.

The loss of a step is `DPO(offline batch) + kl_coef * S`, where S is a score-function surrogate
of KL(policy || reference) on on-policy samples y ~ policy(. | x):

    S = mean_i[(k_i - mean_j k_j) * log policy(y_i | x_i)] / mean_i |y_i|,
    k_i = log policy(y_i | x_i) - log reference(y_i | x_i)   (held constant),

whose gradient is the REINFORCE estimate of the KL's gradient (the mean is a baseline; it
leaves the expectation unchanged). Samples (one per prompt, `kl_samples` prompts drawn from the
dataset) are refreshed every `kl_refresh_steps` optimizer steps; in between they are slightly
off-policy, which the estimate ignores. `HyPOTrainer` subclasses the DPO trainer (TRL's,
scoring only replies on a CPU) and overrides one hook, `compute_loss`; the KL machinery is
`OnPolicyKL`.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from agentrt.training.common import TrainResult
from agentrt.training.dpo import dpo_trainer_class, train_preference
from agentrt.training.dpo_config import DPOSettings

__all__ = ["OnPolicyKL", "train_hypo", "hypo_trainer_class"]


class OnPolicyKL:
    """On-policy samples and the KL surrogate added to the DPO loss.

    Args:
        prompts: chat prompts (message lists) to sample from.
        tokenizer: the policy's tokenizer (with its chat template).
        settings: `kl_coef`, `kl_samples`, `kl_max_tokens`, `kl_refresh_steps`,
            `kl_temperature` and `seed` are used.
    """

    def __init__(self, prompts: list[list[dict[str, str]]], tokenizer: Any, settings: DPOSettings):
        if not prompts:
            raise ValueError("HyPO needs at least one prompt to sample from")
        self.prompts, self.tokenizer, self.s = prompts, tokenizer, settings
        self.rng = random.Random(settings.seed)
        self.batch: dict[str, Any] | None = None
        self.refreshed_at = -1
        self.refreshes = 0

    def _due(self, step: int) -> bool:
        return self.batch is None or step - self.refreshed_at >= self.s.kl_refresh_steps

    def _refresh(self, trainer: Any, model: Any, step: int) -> None:
        import torch  # heavy: torch

        net = trainer.accelerator.unwrap_model(model)
        chosen = [self.prompts[self.rng.randrange(len(self.prompts))]
                  for _ in range(self.s.kl_samples)]
        texts = [self.tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True)
                 for p in chosen]
        side = self.tokenizer.padding_side
        self.tokenizer.padding_side = "left"
        try:
            enc = self.tokenizer(texts, return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(net.device)
        finally:
            self.tokenizer.padding_side = side
        was_training = net.training
        net.eval()
        with torch.no_grad():
            seqs = net.generate(**enc, do_sample=True, temperature=self.s.kl_temperature, top_k=0,
                                max_new_tokens=self.s.kl_max_tokens,
                                pad_token_id=self.tokenizer.pad_token_id)
            batch = _completion_batch(seqs, enc["attention_mask"], self.tokenizer.eos_token_id)
            batch["ref_logps"] = self._reference_logps(trainer, net, batch)
        net.train(was_training)
        self.batch, self.refreshed_at = batch, step
        self.refreshes += 1

    @staticmethod
    def _reference_logps(trainer: Any, net: Any, batch: dict[str, Any]) -> Any:
        if getattr(trainer, "ref_model", None) is not None:
            return sequence_logps(trainer.ref_model, batch)
        with net.disable_adapter():  # LoRA: the reference is the adapter switched off
            return sequence_logps(net, batch)

    def term(self, trainer: Any, model: Any) -> Any:
        """The weighted KL surrogate for this step (refreshing the samples when due)."""
        step = int(trainer.state.global_step)
        if self._due(step):
            self._refresh(trainer, model, step)
        batch = self.batch
        logps = sequence_logps(model, batch)
        k = logps.detach() - batch["ref_logps"]
        length = batch["completion_mask"].sum(dim=1).float().mean().clamp(min=1.0)
        surrogate = ((k - k.mean()) * logps).mean() / length
        metrics = trainer._metrics["train"]
        metrics["hypo/kl"].append(float(k.mean()))
        metrics["hypo/loss"].append(float(surrogate.detach()))
        return self.s.kl_coef * surrogate


def _completion_batch(seqs: Any, prompt_mask: Any, eos_id: int) -> dict[str, Any]:
    """Masks of the sampled sequences: attention over prompt and completion (to its first EOS),
    and which positions are completion tokens."""
    import torch  # heavy: torch

    width = prompt_mask.shape[1]
    gen = seqs[:, width:]
    ended = (gen == eos_id).int()
    after_eos = (ended.cumsum(dim=1) - ended) > 0  # positions after the first EOS
    completion = (~after_eos).long()
    attention = torch.cat([prompt_mask, completion], dim=1)
    return {"input_ids": seqs, "attention_mask": attention,
            "completion_mask": torch.cat([torch.zeros_like(prompt_mask), completion], dim=1)}


def sequence_logps(model: Any, batch: dict[str, Any]) -> Any:
    """Sum of log-probabilities of each sequence's completion tokens under `model` (patched
    with TRL's fused head, as the DPO trainer's policy and reference are: only the completion
    positions go through the output layer)."""
    mask = batch["attention_mask"]
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    out = model(input_ids=batch["input_ids"], attention_mask=mask, position_ids=positions,
                labels=labels, fused_lm_head=True, use_cache=False)
    return out.log_probs.sum(dim=1)


def hypo_trainer_class() -> Any:
    """`HyPOTrainer`: the DPO trainer with the KL term added in `compute_loss`.

    Defined on first use so that importing this module does not import TRL.
    """
    class HyPOTrainer(dpo_trainer_class()):
        """DPO plus HyPO's KL term; `self.kl` is the `OnPolicyKL` set by `train_hypo`."""

        kl: OnPolicyKL | None = None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            if self.kl is None or self.kl.s.kl_coef == 0 or not model.training:
                return out
            extra = self.kl.term(self, model)
            if return_outputs:
                return out[0] + extra, out[1]
            return out + extra

    return HyPOTrainer


def train_hypo(model: str | Path, dataset: Any, out: str | Path,
               settings: DPOSettings | None = None, *, home: Any = None,
               callbacks: list[Any] | None = None) -> TrainResult:
    """Train with DPO on `dataset`'s pairs plus HyPO's on-policy KL term; save to `out`.

    Arguments, returns and errors as `agentrt.training.dpo.train_dpo`; the result's `extra` adds the
    number of sample refreshes and the last KL estimate.

    Example:
        >>> train_hypo("models/sft-1", "data/dpo-1", "models/v2",
        ...            DPOSettings(max_steps=10, kl_coef=0.05))  # doctest: +SKIP
    """
    settings = settings or DPOSettings()
    state: dict[str, OnPolicyKL] = {}

    def attach(trainer: Any, rows: Any) -> dict[str, Any]:
        prompts = list({str(p): p for p in rows["prompt"]}.values())
        state["kl"] = trainer.kl = OnPolicyKL(prompts, trainer.processing_class, settings)
        return {"kl_coef": settings.kl_coef, "prompts": len(prompts)}

    result = train_preference("hypo", model, dataset, out, settings, home=home,
                              callbacks=callbacks, trainer_cls=hypo_trainer_class(),
                              attach=attach)
    result.extra["kl_refreshes"] = state["kl"].refreshes if "kl" in state else 0
    return result
