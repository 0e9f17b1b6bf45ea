"""Direct preference optimization: one function over TRL's `DPOTrainer`.

    result = train_dpo("models/sft-1", "datasets/dpo-1", "models/dpo-1", DPOSettings(max_steps=20))

The dataset is a saved `agentrt.data_synth.compile` DPO dataset: `prompt` messages (exactly what the
runtime sent), `chosen` and `rejected` assistant replies, plus lineage columns that are dropped
here. With LoRA (the default) the reference model is the same network with the adapter
switched off; for full fine-tuning TRL loads the reference from the policy's directory, which
is why `model` is always a saved directory, never an in-memory model. Checkpoints and resume
work as in `agentrt.training.sft`; the trained model is written to `out` atomically.

`train_preference` is the shared body: `agentrt.training.hypo` passes its trainer subclass and the
object that adds HyPO's KL term. On a CPU both score only the replies' positions through the
output layer (`dpo_trainer_class`, `agentrt.training.compact`). This module knows TRL (imported
lazily), not the registry.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.training.common import (
    TrainResult,
    complete_marker,
    last_checkpoint,
    quiet_logs,
    result_from_state,
    save_trained,
)
from agentrt.training.compact import compact_trainer_heads
from agentrt.training.dpo_config import DPOSettings
from agentrt.training.sft import _load_model, load_chat_dataset, work_dir

__all__ = ["train_dpo", "train_preference", "preference_rows", "dpo_trainer_class"]

_COLUMNS = ("prompt", "chosen", "rejected")


def preference_rows(dataset: Any) -> Any:
    """Only the prompt / chosen / rejected columns (lineage columns dropped).

    Raises:
        ConfigError: a column is missing.
    """
    missing = [c for c in _COLUMNS if c not in dataset.column_names]
    if missing:
        raise ConfigError(f"a preference dataset needs columns {', '.join(_COLUMNS)}; "
                          f"missing {', '.join(missing)}")
    return dataset.remove_columns([c for c in dataset.column_names if c not in _COLUMNS])


def dpo_trainer_class() -> Any:
    """`DPOTrainer` whose policy and reference, on a CPU, project only the replies' positions
    through the output layer (`agentrt.training.compact.compact_fused_head`), as TRL's fused head
    does where Triton runs; the same log-probabilities and metrics, TRL's own path elsewhere.

    Defined on first use so that importing this module does not import TRL.
    """
    from trl import DPOTrainer  # heavy: trl

    class CompactDPOTrainer(DPOTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            fields = ("log_probs", "entropy", "mean_logits", "is_top1")
            if self.use_weighting:
                fields += ("log_sum_sq_probs",)
            compact_trainer_heads(self, fields)

    return CompactDPOTrainer


def train_preference(kind: str, model: str | Path, dataset: Any, out: str | Path,
                     settings: DPOSettings, *, home: Any = None,
                     callbacks: list[Any] | None = None, trainer_cls: Any = None,
                     attach: Callable[[Any, Any], dict[str, Any]] | None = None) -> TrainResult:
    """Train with a DPO-family trainer; see `train_dpo` (the arguments are the same).

    Args:
        kind: recorded in the result ("dpo", "hypo").
        trainer_cls: the trainer class (`dpo_trainer_class()` by default).
        attach: called with (trainer, rows) before training; returns extra result fields.
    """
    import torch  # heavy: torch

    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; a trained model is never written over")
    rows = preference_rows(load_chat_dataset(dataset))
    if len(rows) == 0:
        raise ConfigError("the preference dataset has no pairs")
    use_cuda = torch.cuda.is_available()
    net, tokenizer, source = _load_model(model, home, use_cuda)
    work = work_dir(out)
    cls = trainer_cls or dpo_trainer_class()
    trainer = cls(model=net, args=settings.to_trl(work, use_cuda=use_cuda), train_dataset=rows,
                  processing_class=tokenizer,
                  peft_config=(settings.lora.peft_config(net.config.num_hidden_layers)
                               if settings.lora else None),
                  callbacks=[complete_marker(), *(callbacks or [])])
    extra = attach(trainer, rows) if attach is not None else {}
    quiet_logs(trainer)
    resume = last_checkpoint(work)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    wall = time.perf_counter() - started
    tokens = int(getattr(trainer, "_total_train_tokens", 0))
    meta = {"kind": kind, "base": str(model), "source": source, "settings": settings.as_dict()}
    save_trained(trainer, tokenizer, out, meta)
    extra = {"pairs": len(rows), **extra, **_last_metrics(trainer)}
    result = result_from_state(kind, trainer, out, wall, tokens, settings.as_dict(), resume, extra)
    shutil.rmtree(work, ignore_errors=True)
    return result


def _last_metrics(trainer: Any) -> dict[str, Any]:
    """The last logged preference metrics (reward accuracy and margin, KL) for the record."""
    keep = ("rewards/accuracies", "rewards/margins", "hypo/kl", "hypo/loss")
    found: dict[str, Any] = {}
    for entry in trainer.state.log_history:
        found.update({k: float(v) for k, v in entry.items() if k in keep})
    return found


def train_dpo(model: str | Path, dataset: Any, out: str | Path,
              settings: DPOSettings | None = None, *, home: Any = None,
              callbacks: list[Any] | None = None) -> TrainResult:
    """Train `model` on preference pairs with DPO and save the result to `out`.

    Args:
        model: a saved model directory (or name / registered version) to start from.
        dataset: a saved DPO dataset directory, a list of rows, or a Dataset.
        out: the directory the trained model is written to (must not exist).
        settings: training settings (defaults: `DPOSettings()`).
        home: agentrt home for the model cache.
        callbacks: extra `transformers.TrainerCallback`s.

    Returns:
        Steps, losses, tokens, wall time, tokens/s and the last reward metrics.

    Raises:
        ConfigError: missing columns or no pairs.
        FileExistsError: `out` exists already.

    Example:
        >>> train_dpo("models/sft-1", "data/dpo-1", "models/dpo-1",
        ...           DPOSettings(max_steps=10))  # doctest: +SKIP
    """
    return train_preference("dpo", model, dataset, out, settings or DPOSettings(), home=home,
                            callbacks=callbacks)
