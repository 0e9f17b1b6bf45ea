"""What the training wrappers share: LoRA settings, results, checkpoints, atomic model output.

- `LoraSettings`: the adapter every wrapper can train instead of all weights (peft).
- `TrainResult`: what a training run returns and the registry records (steps, losses,
  tokens, wall time, tokens per second, the output directory).
- Checkpoints: TRL/transformers write `checkpoint-N/` directories in place, so a kill can
  leave a partial one. `complete_marker()` marks a checkpoint complete after the trainer saved
  it; `last_checkpoint` resumes from the newest marked one and deletes partial ones.
- `save_model_atomic`: the trained model (LoRA merged into the weights) and its tokenizer are
  written into a temporary sibling directory and renamed into place, so the output directory is
  complete or absent, never half-written.

This module knows transformers and peft (imported lazily); nothing about datasets or stores.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.threads import apply

__all__ = ["LoraSettings", "TrainResult", "settings_dict", "check_run", "trl_args", "SCHEDULERS", "complete_marker", "last_checkpoint",
           "quiet_logs", "save_model_atomic", "save_trained", "process_rank", "result_from_state", "COMPLETE"]

COMPLETE = "agentrt-complete.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LoraSettings:
    """A LoRA adapter (peft) in place of full fine-tuning.

    Attributes:
        r: adapter rank.
        alpha: scaling numerator (the update is scaled by alpha / r).
        dropout: dropout on the adapter input.
        targets: module names that get adapters (all linear layers of a Llama by default).
        top_layers: adapters only in this many of the last decoder layers (None: all). Backward
            then stops at the lowest adapted layer, which makes a step cheaper on a CPU.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    targets: tuple[str, ...] = _ALL_LINEAR
    top_layers: int | None = None

    def __post_init__(self) -> None:
        if self.r < 1 or self.alpha < 1:
            raise ValueError("LoRA rank and alpha must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("LoRA dropout must be in [0, 1)")
        if not self.targets:
            raise ValueError("LoRA needs at least one target module")
        self.targets = tuple(self.targets)
        if self.top_layers is not None and self.top_layers < 1:
            raise ValueError("LoRA top_layers must be >= 1 (or None for every layer)")

    def peft_config(self, num_layers: int | None = None) -> Any:
        """The peft `LoraConfig`; `num_layers` (the model's decoder layers) for `top_layers`."""
        from peft import LoraConfig  # heavy: peft

        layers = None
        if self.top_layers is not None and num_layers is not None:
            layers = list(range(max(num_layers - self.top_layers, 0), num_layers))
        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=list(self.targets), task_type="CAUSAL_LM",
                          layers_to_transform=layers, layers_pattern="layers" if layers else None)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "targets": list(self.targets)}


def settings_dict(settings: Any) -> dict[str, Any]:
    """A trainer settings dataclass as JSON-ready data (what the registry records): its LoRA
    settings as a dict and the learning rate in effect (`settings.lr`)."""
    out = asdict(settings)
    out["lora"] = settings.lora.as_dict() if settings.lora is not None else None
    out["learning_rate"] = settings.lr
    return out


SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")


def check_run(s: Any) -> None:
    """The checks every trainer's settings share (`ValueError`, as TRL's configs raise); turns a
    `lora` dict into `LoraSettings`."""
    if isinstance(s.lora, dict):
        s.lora = LoraSettings(**s.lora)
    if s.lora is not None and not isinstance(s.lora, LoraSettings):
        raise ValueError(f"lora must be LoRA settings (an object such as {{\"r\": 16}}) or "
                         f"null for a full fine-tune, got {s.lora!r}")
    if s.max_steps < -1:
        raise ValueError(f"max_steps must be -1 (run the epochs) or a number of steps, "
                         f"got {s.max_steps}")
    if s.epochs <= 0 and s.max_steps <= 0:
        raise ValueError("give a positive number of epochs or of max_steps")
    if s.batch_size < 1 or s.grad_accum < 1:
        raise ValueError("batch_size and grad_accum must be >= 1")
    if s.learning_rate is not None and not 0 < s.learning_rate < 1:
        raise ValueError(f"learning_rate must be in (0, 1), got {s.learning_rate}")
    if s.lr_scheduler not in SCHEDULERS:
        raise ValueError(f"lr_scheduler must be one of {', '.join(SCHEDULERS)}")
    if not 0 <= s.warmup_ratio < 1:
        raise ValueError("warmup_ratio must be in [0, 1)")
    if s.save_steps < 1 or s.logging_steps < 1 or s.save_total_limit < 1:
        raise ValueError("save_steps, save_total_limit and logging_steps must be >= 1")


def trl_args(s: Any, output_dir: str | Path, *, use_cuda: bool) -> dict[str, Any]:
    """The TRL config arguments every trainer sets the same way from its settings."""
    return dict(
        output_dir=str(output_dir), num_train_epochs=s.epochs, max_steps=s.max_steps,
        gradient_accumulation_steps=s.grad_accum, learning_rate=s.lr,
        lr_scheduler_type=s.lr_scheduler, warmup_steps=s.warmup_ratio, save_strategy="steps",
        save_steps=s.save_steps, save_total_limit=s.save_total_limit,
        logging_steps=s.logging_steps, seed=s.seed, data_seed=s.seed,
        bf16=use_cuda if s.bf16 is None else s.bf16, use_cpu=not use_cuda, report_to="none",
        disable_tqdm=True, dataloader_num_workers=0)


class TrainResult(BaseModel):
    """The outcome of one training run."""

    kind: str
    path: str
    steps: int
    epochs: float
    losses: list[float] = Field(default_factory=list)
    final_loss: float | None = None
    train_tokens: int = 0
    wall_s: float = 0.0
    tokens_per_s: float = 0.0
    resumed_from: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)


@dataclass
class _MarkerState:
    written: list[str] = field(default_factory=list)


def _marker_callback() -> Any:
    from transformers import TrainerCallback  # heavy: transformers

    class _Marker(TrainerCallback):
        """Writes `agentrt-complete.json` into a checkpoint once the trainer has saved it, and
        applies the wanted torch thread count before each step."""

        def __init__(self) -> None:
            self.state = _MarkerState()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            apply()  # the thread count wanted now (see agentrt.core.threads)
            return control

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                _write_json_atomic(folder / COMPLETE, {"step": state.global_step})
                self.state.written.append(str(folder))
            return control

    return _Marker()


def complete_marker() -> Any:
    """A `TrainerCallback` that marks each saved checkpoint complete (defined lazily: the
    callback base class is in transformers)."""
    return _marker_callback()


def _write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def last_checkpoint(folder: str | Path) -> str | None:
    """The newest complete `checkpoint-N` under `folder`; partial ones are deleted."""
    root = Path(folder)
    if not root.is_dir():
        return None
    found = sorted(((int(m.group(1)), p) for p in root.iterdir()
                    if p.is_dir() and (m := _CHECKPOINT.match(p.name))), reverse=True)
    best = None
    main = process_rank() == 0  # under accelerate, one process cleans up
    for _step, path in found:
        if best is None and _checkpoint_ok(path):
            best = str(path)
        elif best is None and main:
            shutil.rmtree(path, ignore_errors=True)  # partial: written when the run was killed
    return best


def _checkpoint_ok(path: Path) -> bool:
    try:
        json.loads((path / COMPLETE).read_text())
        json.loads((path / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    return True


def save_model_atomic(model: Any, tokenizer: Any, out: str | Path,
                      meta: dict[str, Any] | None = None) -> Path:
    """Merge a LoRA adapter if there is one, save model and tokenizer, rename into place.

    Raises:
        FileExistsError: `out` exists already (outputs are never overwritten).
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out} exists; a trained model is never written over")
    out.parent.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        _write_json_atomic(tmp / "agentrt-version.json", meta or {})
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def process_rank() -> int:
    """This process's global rank under a distributed launcher (torchrun and `accelerate launch`
    set RANK, MPI launchers their own variable); 0 for a plain run."""
    for name in ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK"):
        if os.environ.get(name, "").isdigit():
            return int(os.environ[name])
    return 0


def _sharded(trainer: Any) -> bool:
    return bool(getattr(trainer, "is_deepspeed_enabled", False)
                or getattr(trainer, "is_fsdp_enabled", False))


def save_trained(trainer: Any, tokenizer: Any, out: str | Path,
                 meta: dict[str, Any] | None = None) -> Path:
    """Save a finished trainer's model to `out`, complete or not at all.

    On one process: `save_model_atomic` (LoRA merged). Under plain data parallelism (several
    processes, each holding the whole model) the main process does the same with its copy while
    the others wait, so the output is the same kind of directory as a one-process run's. Under
    DeepSpeed ZeRO or FSDP every rank calls `trainer.save_model` into one temporary directory,
    which gathers the sharded weights (a LoRA run saves its adapter, which the hf backend loads
    on top of its base), and the main process renames it into place.
    """
    out = Path(out)
    acc = trainer.accelerator
    if not _sharded(trainer):
        if acc.num_processes == 1:
            return save_model_atomic(trainer.model, tokenizer, out, meta)
        if acc.is_main_process:
            save_model_atomic(acc.unwrap_model(trainer.model), tokenizer, out, meta)
        acc.wait_for_everyone()
        return out
    tmp = out.parent / f".{out.name}.saving"
    if acc.is_main_process:
        if out.exists():
            raise FileExistsError(f"{out} exists; a trained model is never written over")
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    trainer.save_model(str(tmp))
    if acc.is_main_process:
        tokenizer.save_pretrained(tmp)
        _write_json_atomic(tmp / "agentrt-version.json", meta or {})
        os.replace(tmp, out)
    acc.wait_for_everyone()
    return out


def result_from_state(kind: str, trainer: Any, out: Path, wall_s: float, tokens: int,
                      config: dict[str, Any], resumed_from: str | None,
                      extra: dict[str, Any] | None = None) -> TrainResult:
    """A `TrainResult` from a finished trainer's log history."""
    history = trainer.state.log_history
    acc = trainer.accelerator
    losses = [float(h["loss"]) for h in history if "loss" in h and math.isfinite(h["loss"])]
    final = next((float(h["train_loss"]) for h in reversed(history) if "train_loss" in h), None)
    return TrainResult(kind=kind, path=str(out), steps=int(trainer.state.global_step),
                       epochs=float(trainer.state.epoch or 0.0), losses=losses,
                       final_loss=final, train_tokens=tokens, wall_s=wall_s,
                       tokens_per_s=tokens / wall_s if wall_s > 0 else 0.0,
                       resumed_from=resumed_from, config=config,
                       extra={"processes": acc.num_processes,
                              "backend": getattr(acc.state, "backend", None), **(extra or {})})


def quiet_logs(trainer: Any) -> None:
    """Stop the trainer printing every log dict (the result keeps the losses; callers show
    progress with their own callbacks)."""
    from transformers.trainer_callback import (  # heavy: transformers
        PrinterCallback,
        ProgressCallback,
    )

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
