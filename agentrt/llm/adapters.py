"""LoRA adapters: how the project's trained model is shipped and rebuilt.

Trained models are saved with their LoRA merged into full weights (`agentrt.training.common`).
`export_adapter` turns such a model back into a small PEFT LoRA adapter over its base: the
difference merged - base of every linear layer that changed is factored by a truncated SVD
into `B @ A` (`agentrt.llm.lora_factor`). That is exact (up to the storage dtype) when the
difference's rank is at most the adapter's rank, as after an SFT step and a preference step
that each trained LoRA r 16 and an export at rank 32. An adapter folder holds:

- `adapter_config.json`, `adapter_model.safetensors`: what `peft.PeftModel.from_pretrained`
  loads (the hf backend also loads such a folder directly);
- `agentrt-adapter.json` (`AdapterManifest`): base model name, the weights' sha256, the largest
  reconstruction error measured, and runtime settings meant for the model;
- `MODEL_CARD.md` (`agentrt.llm.model_card`).

`merge_adapter` does the reverse once per machine: it checks the weights against the recorded
hash, merges them into the base in memory and saves a plain model. Adapters shipped with the
package live in `agentrt/llm/shipped/<name>/` (or `$AGENTRT_SHIPPED_DIR/<name>/`);
`shipped_adapter` finds one and `shipped_settings` reads its runtime settings.

This module knows nothing about the model cache, registry versions or the CLI: the cache is
`agentrt.llm.models`, and the CLI turns a version reference into a model directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from agentrt.core.config import check_settings, shipped_settings
from agentrt.core.errors import BackendUnavailableError, InvalidInputError, ModelNotFoundError
from agentrt.core.shipped import (
    ADAPTER_CONFIG,
    ADAPTER_MANIFEST,
    ADAPTER_WEIGHTS,
    BASE_MODEL,
    MODEL_CARD,
    SHIPPABLE_SETTINGS,
    SHIPPED_ENV,
    SHIPPED_MODEL,
    AdapterManifest,
    read_manifest,
    shipped_adapter,
    shipped_root,
)
from agentrt.llm.lora_factor import factor_differences
from agentrt.llm.model_card import render_card

__all__ = ["ADAPTER_CONFIG", "ADAPTER_MANIFEST", "ADAPTER_WEIGHTS", "BASE_MODEL", "SHIPPED_ENV",
           "SHIPPED_MODEL", "SHIPPABLE_SETTINGS", "MODEL_CARD", "AdapterManifest", "AdapterExport",
           "export_adapter", "read_manifest", "verify_adapter", "merge_adapter", "file_sha256",
           "shipped_root", "shipped_adapter", "shipped_settings", "check_settings"]

_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "float16", "float16": "float16",
           "fp32": "float32", "float32": "float32"}

Step = Callable[[str], None]


@dataclass(frozen=True)
class AdapterExport:
    """What `export_adapter` wrote."""

    path: Path
    manifest: AdapterManifest
    size_bytes: int
    unchanged_layers: int


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _lora_config(base_model: str, rank: int, modules: list[str],
                 ranks: dict[str, int] | None = None) -> Any:
    from peft import LoraConfig  # heavy: peft

    # alpha = r: peft scales B @ A by alpha / r, so the stored factors are the update itself.
    # Layers of another rank are named in full (peft reads the keys as patterns).
    other = {re.escape(m): r for m, r in (ranks or {}).items() if r != rank}
    return LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, bias="none",
                      target_modules=modules, task_type="CAUSAL_LM", inference_mode=True,
                      base_model_name_or_path=base_model, rank_pattern=other,
                      alpha_pattern=dict(other))


def _write_folder(out: Path, fill: Callable[[Path], None], overwrite: bool) -> None:
    """Fill a temporary sibling of `out`, then rename it into place (replacing `out` if asked)."""
    if out.exists() and not overwrite:
        raise InvalidInputError(f"{out} exists; pass overwrite (--force) to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    old = out.parent / f".{out.name}.old"
    try:
        fill(tmp)
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def export_adapter(merged_dir: str | Path, base_dir: str | Path, out_dir: str | Path, *,
                   name: str = SHIPPED_MODEL, base_model: str = BASE_MODEL, rank: int = 32,
                   dtype: str = "bf16", tol: float = 1e-6, max_error: float = 0.02,
                   rank_error: float | None = None, strict: bool = True, settings: dict[str, Any] | None = None,
                   router: dict[str, Any] | None = None, source: dict[str, Any] | None = None,
                   card: Any = None, overwrite: bool = False) -> AdapterExport:
    """Extract a PEFT LoRA adapter from a model trained (LoRA merged) from `base_dir`.

    Every linear weight whose relative difference from the base exceeds `tol` becomes one
    adapted layer; the others are left out. The output folder is written atomically.

    Args:
        merged_dir: the trained model (safetensors weights).
        base_dir: the model it was trained from, converted locally.
        out_dir: the adapter folder to write.
        name: the model name the adapter is shipped as (recorded in the manifest and card).
        base_model: the base's embedded model name, recorded for peft and for `pull_model`.
        rank: the adapter's rank (the largest, with `rank_error`).
        dtype: storage dtype, `bf16` (default), `fp16` or `fp32`.
        tol: relative difference (Frobenius) at or below which a weight counts as unchanged.
        max_error: refuse an adapter whose relative reconstruction error exceeds this in any
            layer (a rank too small for the training's updates).
        rank_error: give each layer the least rank up to `rank` that reproduces its update
            within this relative error (at most `max_error`), so layers whose updates need
            less take less room; None: every layer at `rank`.
        strict: refuse a model whose non-linear weights (embeddings, norms, biases) differ
            from the base; with False they are recorded in the manifest's `ignored` instead.
        settings: runtime settings meant for the model (see `check_settings`).
        router: a router description to record as given.
        source: where the model came from (e.g. `{"version": "v3", "id": "mv-..."}`).
        card: an `agentrt.llm.model_card.CardInfo` for `MODEL_CARD.md` (placeholders if None).
        overwrite: replace an existing `out_dir`.

    Returns:
        The folder, its manifest, the weights' size and how many linear weights were unchanged.

    Raises:
        ModelNotFoundError: a directory holds no safetensors weights.
        InvalidInputError: different architectures, non-linear weights that differ (strict),
            nothing changed, an error above `max_error`, bad rank, dtype or `rank_error`,
            `out_dir` exists.
        ConfigError: invalid settings.

    Example:
        >>> export_adapter("runs/cpu/models/it1-hypo", base, "adapter")  # doctest: +SKIP
    """
    import torch  # heavy: torch
    from safetensors.torch import save_file  # heavy: safetensors

    if rank < 1:
        raise InvalidInputError(f"adapter rank must be >= 1, got {rank}")
    if dtype not in _DTYPES:
        raise InvalidInputError(f"adapter dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    if rank_error is not None and not 0 < rank_error <= max_error:
        raise InvalidInputError(f"rank_error must be in (0, max_error = {max_error}], "
                                f"got {rank_error}")
    settings = check_settings(settings)
    merged_dir, base_dir, out = Path(merged_dir), Path(base_dir), Path(out_dir)
    if out.exists() and not overwrite:  # checked again when renaming into place
        raise InvalidInputError(f"{out} exists; pass overwrite (--force) to replace it")
    found = factor_differences(merged_dir, base_dir, rank, getattr(torch, _DTYPES[dtype]), tol,
                               rank_error)
    others, errors, modules, tensors = found.others, found.errors, found.modules, found.tensors
    if others and strict:
        shown = ", ".join(f"{k} ({v:.2g})" for k, v in sorted(others.items())[:5])
        raise InvalidInputError(f"{len(others)} weight(s) outside the linear layers differ from "
                                f"the base, which a LoRA adapter cannot carry: {shown}")
    if not errors:
        raise InvalidInputError(f"no linear layer of {merged_dir} differs from the base")
    worst = max(e[0] for e in errors)
    if worst > max_error:
        raise InvalidInputError(f"a rank-{rank} adapter reproduces the updates only to relative "
                                f"error {worst:.3g} (limit {max_error}); raise the rank")
    manifest: dict[str, Any] = {}
    top = max(found.ranks.values()) if rank_error is not None else rank

    def fill(tmp: Path) -> None:
        save_file(tensors, str(tmp / ADAPTER_WEIGHTS), metadata={"format": "pt"})
        _lora_config(base_model, top, modules, found.ranks).save_pretrained(str(tmp))
        m = AdapterManifest(name=name, base_model=base_model,
                            adapter_sha256=file_sha256(tmp / ADAPTER_WEIGHTS), rank=top,
                            mean_rank=sum(found.ranks.values()) / len(found.ranks),
                            dtype=_DTYPES[dtype], layers=len(modules), max_relative_error=worst,
                            max_abs_error=max(e[1] for e in errors), ignored=others,
                            source=dict(source or {}), settings=settings, router=router,
                            created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
        (tmp / ADAPTER_MANIFEST).write_text(json.dumps(m.model_dump(mode="json"), indent=2) + "\n")
        (tmp / MODEL_CARD).write_text(render_card(m, card, (tmp / ADAPTER_WEIGHTS).stat().st_size))
        manifest["value"] = m

    _write_folder(out, fill, overwrite)
    return AdapterExport(path=out, manifest=manifest["value"],
                         size_bytes=(out / ADAPTER_WEIGHTS).stat().st_size,
                         unchanged_layers=found.unchanged)


# --- reading, checking and merging -----------------------------------------------------------


def verify_adapter(folder: str | Path) -> AdapterManifest:
    """The manifest of an adapter folder whose weights match their recorded sha256.

    Raises:
        ModelNotFoundError: the manifest or the weights are missing, or the weights' hash is
            not the recorded one (the message names both).
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file() or not (folder / ADAPTER_CONFIG).is_file():
        raise ModelNotFoundError(f"adapter {folder} lacks {ADAPTER_WEIGHTS} or {ADAPTER_CONFIG}",
                                 model=manifest.name)
    actual = file_sha256(weights)
    if actual != manifest.adapter_sha256:
        raise ModelNotFoundError(
            f"adapter {manifest.name}: {ADAPTER_WEIGHTS} has sha256 {actual}, but "
            f"{ADAPTER_MANIFEST} records {manifest.adapter_sha256}; the file was changed or "
            "damaged", model=manifest.name)
    return manifest


def merge_adapter(adapter_dir: str | Path, base_dir: str | Path, out: str | Path,
                  step: Step | None = None) -> dict[str, Any]:
    """Verify an adapter, merge it into its base in memory, save the merged model into `out`.

    `out` must exist (the caller owns atomicity: `agentrt.llm.models.pull_model` passes a
    temporary directory). The base's tokenizer is saved with the model; the manifest and card
    are copied beside it for provenance.

    Returns:
        Manifest fields for the model cache: the adapter's sha256 and base model.

    Raises:
        ModelNotFoundError: see `verify_adapter`.
        BackendUnavailableError: peft is not installed.
    """
    import torch  # heavy: torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers
    from transformers.utils import logging as hf_logging  # heavy: transformers

    hf_logging.disable_progress_bar()
    step = step or (lambda _msg: None)
    adapter_dir, out = Path(adapter_dir), Path(out)
    step("checking adapter")
    manifest = verify_adapter(adapter_dir)
    try:
        from peft import PeftModel  # heavy: peft
    except ImportError:
        raise BackendUnavailableError("merging a LoRA adapter needs peft: "
                                      "pip install peft") from None
    step("loading base")
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    step("merging adapter")
    model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    model.config.name_or_path = manifest.name
    step("saving safetensors")
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(out)
    for extra in (ADAPTER_MANIFEST, MODEL_CARD):
        if (adapter_dir / extra).is_file():
            shutil.copyfile(adapter_dir / extra, out / extra)
    return {"adapter_sha256": manifest.adapter_sha256, "base_model": manifest.base_model}
