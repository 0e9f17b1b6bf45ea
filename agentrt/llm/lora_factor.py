"""Low-rank factoring of the weight difference between a fine-tuned model and its base.

`factor_differences` reads two saved models tensor by tensor (safetensors, one file or a
sharded index, never both models whole in memory), and factors the difference of every linear
weight that changed by a truncated SVD into LoRA's `B @ A`, in peft's tensor names: every layer
at one rank, or (`rank_error`) each layer at the least rank that reproduces it to that relative
error, the rank at most the given one. It reports
the other weights that differ (embeddings, norms, biases), which no LoRA adapter carries, and
the reconstruction error of every factored layer, measured after rounding to the storage dtype.

This module knows nothing about adapter folders, manifests or shipping (`agentrt.llm.adapters`).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError, ModelNotFoundError

__all__ = ["Factored", "factor_differences"]


@dataclass
class Factored:
    """The outcome of `factor_differences`.

    Attributes:
        tensors: the adapter's tensors under peft's names
            (`base_model.model.<module>.lora_A.weight`).
        modules: the adapted linear modules, sorted.
        others: weights outside the linear layers that differ: name -> relative difference.
        errors: (relative, absolute) reconstruction error per adapted layer.
        unchanged: linear weights left out because they did not change.
        ranks: the rank of each adapted module.
    """

    tensors: dict[str, Any] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)
    others: dict[str, float] = field(default_factory=dict)
    errors: list[tuple[float, float]] = field(default_factory=list)
    unchanged: int = 0
    ranks: dict[str, int] = field(default_factory=dict)


def _weight_files(folder: Path) -> dict[str, Path]:
    """Tensor name -> safetensors file of a saved model (one file or a sharded index)."""
    from safetensors import safe_open  # heavy: safetensors

    index = folder / "model.safetensors.index.json"
    if index.is_file():
        mapping = json.loads(index.read_text())["weight_map"]
        return {name: folder / file for name, file in mapping.items()}
    single = folder / "model.safetensors"
    if not single.is_file():
        raise ModelNotFoundError(f"{folder} has no safetensors weights (model.safetensors)",
                                 model=str(folder))
    with safe_open(str(single), "pt") as f:
        return {name: single for name in f.keys()}


class _Weights:
    """Reads single tensors of a saved model, each file opened once."""

    def __init__(self, folder: Path, stack: contextlib.ExitStack):
        from safetensors import safe_open  # heavy: safetensors

        self.files = _weight_files(folder)
        self._open = {p: stack.enter_context(safe_open(str(p), "pt"))
                      for p in set(self.files.values())}

    def get(self, name: str) -> Any:
        return self._open[self.files[name]].get_tensor(name)


def _linear_modules(folder: Path) -> set[str]:
    """Names of the `nn.Linear` modules of the model a folder's config describes."""
    import torch  # heavy: torch
    from transformers import AutoConfig, AutoModelForCausalLM  # heavy: transformers

    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return {n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def _factor(delta: Any, rank: int, dtype: Any,
            rank_error: float | None = None) -> tuple[Any, Any, float, float]:
    """`delta` (out x in) as B (out x r) @ A (r x in) in `dtype`; with the errors.

    r is `rank` (zero-padded where the matrix's rank is smaller), or with `rank_error` the
    least r up to `rank` whose reconstruction, rounded to `dtype`, is within that relative
    error (the largest r when none is). The singular values are split evenly between the
    factors (B = U sqrt(S), A = sqrt(S) V^T), so neither factor holds all the magnitude when it
    is rounded to a 16-bit dtype.
    """
    import torch  # heavy: torch

    exact = delta.double()
    u, s, vh = torch.linalg.svd(exact, full_matrices=False)
    norm = exact.norm().clamp_min(1e-300)
    most = min(rank, s.numel())
    if rank_error is None:
        sizes = [rank]
    else:  # the truncation error alone; rounding adds to it, so try upwards from there
        tail = (s.flip(0).square().cumsum(0).flip(0).sqrt() / norm).tolist() + [0.0]
        first = next((k for k in range(1, most + 1) if tail[k] <= rank_error), most)
        sizes = list(range(first, most + 1))
    for size in sizes:
        k = min(size, most)
        root = s[:k].sqrt()
        b = torch.zeros(exact.shape[0], size, dtype=torch.float64)
        a = torch.zeros(size, exact.shape[1], dtype=torch.float64)
        b[:, :k] = u[:, :k] * root
        a[:k] = root[:, None] * vh[:k]
        b, a = b.to(dtype).contiguous(), a.to(dtype).contiguous()
        err = b.double() @ a.double() - exact
        rel = float(err.norm() / norm)
        if rank_error is None or rel <= rank_error:
            break
    return a, b, rel, float(err.abs().max())


def _relative(delta: Any, ref: Any) -> float:
    return float(delta.norm() / ref.norm().clamp_min(1e-12)) if delta.numel() else 0.0


def factor_differences(merged_dir: str | Path, base_dir: str | Path, rank: int, dtype: Any,
                       tol: float, rank_error: float | None = None) -> Factored:
    """Factor every linear weight of `merged_dir` that differs from `base_dir`'s.

    Args:
        merged_dir: the fine-tuned model.
        base_dir: its base (same architecture).
        rank: the rank of every factored layer (zero-padded where the matrix is smaller), or
            the largest with `rank_error`.
        dtype: the torch dtype the factors are stored in.
        tol: relative difference (Frobenius) at or below which a weight counts as unchanged.
        rank_error: give each layer the least rank (up to `rank`) that reproduces it within
            this relative error after rounding; None: every layer at `rank`.

    Raises:
        ModelNotFoundError: a directory holds no safetensors weights.
        InvalidInputError: the two models hold different weights or shapes.
    """
    base_dir = Path(base_dir)
    linear = _linear_modules(base_dir)
    with contextlib.ExitStack() as stack:
        merged, base = _Weights(Path(merged_dir), stack), _Weights(base_dir, stack)
        if set(merged.files) != set(base.files):
            extra = sorted(set(merged.files) ^ set(base.files))[:5]
            raise InvalidInputError(f"the trained model and its base hold different weights "
                                    f"(e.g. {extra}); not a fine-tune of this base")
        out = Factored()
        for name in sorted(merged.files):
            _one(out, name, merged.get(name), base.get(name), linear, rank, dtype, tol,
                 rank_error)
    out.modules = sorted(k[len("base_model.model."):-len(".lora_A.weight")]
                         for k in out.tensors if k.endswith(".lora_A.weight"))
    return out


def _one(out: Factored, name: str, w: Any, b: Any, linear: set[str], rank: int, dtype: Any,
         tol: float, rank_error: float | None) -> None:
    """Compare one tensor and, for a changed linear weight, add its factors to `out`."""
    if w.shape != b.shape:
        raise InvalidInputError(f"weight {name} has shape {tuple(w.shape)} in the trained "
                                f"model but {tuple(b.shape)} in the base")
    if not w.is_floating_point():
        return
    # Compare at the trained model's precision: a bf16 save of an untouched fp32 layer equals
    # the base rounded to bf16, not the base.
    delta = w.float() - b.to(w.dtype).float()
    rel = _relative(delta, b.float())
    module, _, leaf = name.rpartition(".")
    is_linear = leaf == "weight" and module in linear and delta.dim() == 2
    if rel <= tol:
        out.unchanged += is_linear
    elif not is_linear:
        out.others[name] = rel
    else:
        a, bb, rel_err, abs_err = _factor(delta, rank, dtype, rank_error)
        out.tensors[f"base_model.model.{module}.lora_A.weight"] = a
        out.tensors[f"base_model.model.{module}.lora_B.weight"] = bb
        out.errors.append((rel_err, abs_err))
        out.ranks[module] = int(a.shape[0])
