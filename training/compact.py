"""Scores of the labelled positions only, on a CPU: what TRL's fused LM head does where Triton runs.

TRL's trainers (SFT, DPO, GRPO) patch the model with a fused LM head
(`trl.trainer.utils.add_fused_lm_head`): called with `fused_lm_head=True` it returns per-token
log-probabilities instead of logits. Where Triton runs it projects only the positions that carry
a label; elsewhere every position, prompts and padding included, goes through the 49,152-wide
output layer, and again in the backward. With the loss on replies only, that is most of a CPU
step (docs/TRAINING.md, "Training wrappers"). `label_fields` scores the labelled rows alone
(the SFT wrapper's loss uses it directly); `compact_fused_head` wraps a TRL-patched model so
that, on a CPU, its fused forward does that and returns the same fields (zero where the label
is -100, as TRL's), and `compact_trainer_heads` does so for a trainer's policy and reference.
Anything it does not cover exactly (shifted labels, router logits, logit scaling or
soft-capping, a device other than the CPU) goes to TRL's own forward.

Defined without importing TRL at module level; torch is imported on first use.
"""

from __future__ import annotations

import types
from typing import Any

__all__ = ["label_fields", "compact_fused_head", "compact_trainer_heads", "plain_head"]

#: Config fields that change the output layer's logits; a model that sets any keeps TRL's path.
_SCALING = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
            "logits_scaling")


def plain_head(config: Any) -> bool:
    """Whether the model's logits are the output layer's product as it is (no scale, no cap)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return all(getattr(text, k, None) is None for k in _SCALING)


def label_fields(head: Any, hidden: Any, targets: Any, outputs: tuple[str, ...] = ("log_probs",),
                 temperature: float = 1.0) -> dict[str, Any]:
    """Per-row fields of the rows `hidden` (n x d) whose next tokens are `targets` (n).

    Fields, as TRL's fused head names them: `log_probs` (with gradient), `entropy`,
    `log_sum_sq_probs`, `mean_logits` (of the temperature-scaled logits) and `is_top1` (the
    label is the first most likely token), each when named in `outputs`; all but `log_probs`
    without gradient.
    """
    import torch  # heavy: torch

    logits = head(hidden).float()
    if temperature != 1.0:
        logits = logits / temperature
    logps = torch.log_softmax(logits, dim=-1)
    out = {"log_probs": logps.gather(-1, targets.unsqueeze(-1)).squeeze(-1)}
    with torch.no_grad():
        flat = logps.detach()
        if "entropy" in outputs:
            out["entropy"] = -(flat.exp() * flat).sum(-1)
        if "log_sum_sq_probs" in outputs:
            out["log_sum_sq_probs"] = torch.logsumexp(2 * flat, dim=-1)
        if "mean_logits" in outputs:
            out["mean_logits"] = logits.detach().mean(-1)
        if "is_top1" in outputs:
            out["is_top1"] = flat.argmax(-1) == targets
    return out


def compact_fused_head(model: Any, outputs: tuple[str, ...], temperature: float = 1.0) -> bool:
    """Wrap `model` (a transformers causal LM already patched by TRL's `add_fused_lm_head` with
    these `outputs` and `temperature`) so that its fused forward scores only labelled rows on a
    CPU. Returns False, leaving the model as it was, when its logits are scaled or capped."""
    if not plain_head(model.config):
        return False
    fused = model.forward

    def forward(self: Any, *args: Any, fused_lm_head: bool = False, labels: Any = None,
                shift_labels: Any = None, num_items_in_batch: Any = None, **kwargs: Any) -> Any:
        own = (fused_lm_head and labels is not None and shift_labels is None
               and not kwargs.get("output_router_logits") and labels.device.type == "cpu"
               and not getattr(self.config.get_text_config(), "output_router_logits", False))
        if not own:
            return fused(*args, fused_lm_head=fused_lm_head, labels=labels,
                         shift_labels=shift_labels, num_items_in_batch=num_items_in_batch,
                         **kwargs)
        return _compact_forward(self, args, kwargs, labels, num_items_in_batch, outputs,
                                temperature)

    model.forward = types.MethodType(forward, model)
    return True


def compact_trainer_heads(trainer: Any, outputs: tuple[str, ...],
                          temperature: float = 1.0) -> None:
    """After a TRL preference or RL trainer patched its models' heads: the policy (the base
    model under a PEFT wrapper) scoring `outputs`, the reference (if any) log-probabilities
    only, both at `temperature`, through `compact_fused_head`."""
    policy = trainer.model
    compact_fused_head(policy.get_base_model() if hasattr(policy, "get_base_model") else policy,
                       outputs, temperature)
    if trainer.ref_model is not None:
        compact_fused_head(trainer.ref_model, ("log_probs",), temperature)


def _compact_forward(net: Any, args: tuple[Any, ...], kwargs: dict[str, Any], labels: Any,
                     num_items_in_batch: Any, outputs: tuple[str, ...],
                     temperature: float) -> Any:
    from trl.trainer.utils import FusedCausalLMOutput  # heavy: trl

    kwargs["use_cache"] = False
    hidden = net.base_model(*args, **kwargs).last_hidden_state[:, :-1]
    targets = labels[:, 1:].to(hidden.device)
    mask = targets != -100
    rows = label_fields(net.get_output_embeddings(), hidden[mask], targets[mask], outputs,
                        temperature)
    # `masked_scatter` keeps the output connected to the graph even when no label is valid
    full = {k: v.new_zeros(mask.shape).masked_scatter(mask, v) for k, v in rows.items()}
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return FusedCausalLMOutput(loss=-full["log_probs"].sum() / count, label_mask=mask, **full)
