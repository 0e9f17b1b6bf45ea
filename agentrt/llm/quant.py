"""Weight-only integer linear layers for the hf backend on CPU: int8 per output channel, and
4-bit in groups with a LoRA adapter kept beside the 4-bit base.

Both replace a model's `torch.nn.Linear` modules in place. Decode steps (one position per row)
multiply bf16 activations by the packed weights with torch's CPU kernels
(`_weight_int8pack_mm`, `_weight_int4pack_mm_for_cpu`); prefills (many positions) use plain
products, where those kernels are slower than bf16's or fp32's. `agentrt.llm.lean` fuses the
packed weights of a layer's q, k, v (and gate, up) into one product.
"""

from __future__ import annotations

from typing import Any

from agentrt.core.errors import ConfigError

__all__ = ["INT4_GROUP", "INT8_ROWS", "quantize", "quantize_int4", "quantize_int8"]

INT4_GROUP = 32  # weights per scale and zero: the grid of the GGUF Q4_1 file the base comes from
# the most rows the int8 kernel multiplies: beyond about 24 a plain product of the layer's
# rounded copy is faster (576 x 1,536 layer, bf16 rows against fp32: 1.15x at 24, 0.79x at 32)
INT8_ROWS = 24


def quantize(model: Any, precision: str) -> int:
    """Quantize `model` in place as a precision name (`hf_load.pick_precision`) asks: `int8`
    and `int4` round its linear layers, other names leave it as loaded; the count replaced."""
    rounders = {"int8": quantize_int8, "int4": quantize_int4}
    return rounders[precision](model) if precision in rounders else 0


def quantize_int8(model: Any) -> int:
    """Replace every linear layer of `model` by weight-only int8 (in place); the count replaced.

    Each output channel's weights are scaled to [-127, 127] by their largest magnitude
    (symmetric, per channel) and stored as int8, a quarter of fp32's bytes; a decode step
    multiplies bf16 activations by them with torch's `_weight_int8pack_mm` CPU kernel (built for
    a few rows: faster than fp32's up to about `INT8_ROWS` rows, slower beyond). Each layer
    also keeps a copy of its rounded weights in the dtype the model loaded in (fp32), which
    prefills (more than one position) and decode steps of more than `INT8_ROWS` rows multiply
    by: so int8 is never slower than fp32 at any batch size (memory: about 1.25x fp32's), and a
    prompt's prefill gets the same numbers alone or batched (decode steps may round
    differently with other rows beside them, as bf16 does). Either way the layer hands back its
    input dtype, and everything else (norms, attention, the KV cache) stays in fp32. The output
    layer is quantized too: with tied embeddings it is the largest matrix, and the input
    embedding keeps its own fp32 copy; the output layer keeps no copy of its own (a step's
    logits are one position per row, where the int8 kernel wins up to 32-48 rows; a prefill
    asking for more positions dequantizes).
    """
    import torch  # heavy: torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return _replace(model, lambda name, child: _int8_layer(child, copy=child is not head)
                    if isinstance(child, torch.nn.Linear) else None)


def quantize_int4(model: Any, group: int = INT4_GROUP, only_on_grid: bool = True) -> int:
    """Round the linear layers of a bf16 `model` to 4-bit weights (in place); the count replaced.

    Each run of `group` weights along a row gets its own scale and zero (asymmetric, min to max
    in 16 steps: the grid of GGUF's Q4_1). With `only_on_grid` (the default) only layers whose
    weights already lie on such a grid are rounded, which loses nothing but the scales' bf16
    rounding: the embedded base's linear layers all do (it came from a Q4_1 file); a model
    fine-tuned in full, or an adapter merged into its weights, does not, and those layers stay
    bf16 (merged then rounded, the shipped model fell from 13/20 to 2/20 on the generators'
    held-out set). A layer keeps its weights twice, as packed 4 bits for decode steps and as
    their bf16 values for prefills (the 4-bit kernel is ~10x slower than bf16 for a few hundred
    rows): the same numbers, so a prompt's prefill and its decode steps see one model. Memory:
    about 1.25x bf16's.

    Where `model` still holds peft LoRA layers (`hf_load.load_model(..., merge_adapter=False)`),
    the base weights go to 4 bits and decode steps add the adapter's factors in fp32,
    `y = x W4 + (x A^T) B^T` (two small extra products; fp32 because torch multiplies one row
    by such small matrices 5-10x faster than in bf16); the prefill copy has the adapter merged
    into it. Over a base layer that stays bf16 the adapter is merged. The output layer (tied to
    the input embedding, whose weights are not on a 4-bit grid) gets int8 per channel and its
    own copy (measured: accuracy and plain chat within the noise of bf16's,
    benchmarks/README.md); the input embedding keeps its bf16 weights. Layers whose sizes the
    kernel cannot tile (multiples of 16 and of `group`) stay as they are.
    """
    import torch  # heavy: torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None

    def swap(name: str, child: Any) -> Any:
        if child is head and isinstance(child, torch.nn.Linear):
            return _int8_layer(child)
        lora = hasattr(child, "base_layer") and hasattr(child, "lora_A")
        base = child.base_layer if lora else child
        if not isinstance(base, torch.nn.Linear):
            return None
        low_rank = _lora_factors(child) if lora else None
        if base.in_features % group or base.in_features % 16 or base.out_features % 16:
            return _merged(base, low_rank) if lora else None
        rounded = _round4(base.weight, group)
        if only_on_grid and not _on_grid(base.weight, rounded, group):
            return _merged(base, low_rank) if lora else None
        return _int4_layer(base, group, rounded, low_rank)

    return _replace(model, swap)


def _round4(weight: Any, group: int) -> tuple[Any, Any, Any, Any]:
    """(levels 0-15, scales, zeros, rounded weights) of a (rows, cols) weight: per group of
    `group` weights along a row, min to max in 16 steps; scales and zeros in bf16 as the kernel
    reads them, `w = (q - 8) * scale + zero`."""
    import torch  # heavy: torch

    w = weight.detach().float()
    rows, cols = w.shape
    g = w.reshape(rows, cols // group, group)
    low, high = g.amin(-1, keepdim=True), g.amax(-1, keepdim=True)
    scale = ((high - low) / 15).clamp(min=1e-8).to(torch.bfloat16).float()
    zero = (low + 8 * scale).to(torch.bfloat16).float()
    q = torch.round((g - low) / scale).clamp(0, 15)
    return q.reshape(rows, cols), scale, zero, ((q - 8) * scale + zero).reshape(rows, cols)


def _on_grid(weight: Any, rounding: tuple[Any, Any, Any, Any], group: int) -> bool:
    """Whether `rounding` (`_round4` of `weight`) moves no weight by more than a quarter of a
    level: on a grid, bf16 storage alone moves weights by up to about 0.12 of a level; off it,
    rounding moves some weight of every layer by nearly half a level."""
    _, scale, _, rounded = rounding
    moved = (rounded - weight.detach().float()).reshape(scale.shape[0], -1, group) / scale
    return bool(moved.abs().amax() <= 0.25)


def _merged(linear: Any, low_rank: tuple[Any, Any]) -> Any:
    """A plain linear layer with a LoRA change merged into its weights."""
    import torch  # heavy: torch

    out = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None,
                          dtype=linear.weight.dtype)
    with torch.no_grad():
        out.weight.copy_(linear.weight.float() + low_rank[1] @ low_rank[0])
        if linear.bias is not None:
            out.bias.copy_(linear.bias)
    return out.requires_grad_(False)


def _replace(module: Any, swap: Any) -> int:
    """Set each child for which `swap(name, child)` gives a module (not looking inside it
    again), walk into the others; the count replaced."""
    count = 0
    for name, child in list(module.named_children()):
        new = swap(name, child)
        if new is None:
            count += _replace(child, swap)
        else:
            setattr(module, name, new)
            count += 1
    return count


def _lora_factors(layer: Any) -> tuple[Any, Any]:
    """(A, B) of a peft LoRA layer's active adapters, scaling folded into B: the layer adds
    `(x A^T) B^T`. Several adapters are stacked along the rank."""
    import torch  # heavy: torch

    names = [n for n in getattr(layer, "active_adapters", ["default"]) if n in layer.lora_A]
    if not names:
        raise ConfigError("a LoRA layer without an active adapter cannot be quantized")
    if any(getattr(layer, "use_dora", {}).get(n) for n in names):
        raise ConfigError("dtype int4 serves plain LoRA adapters; a DoRA adapter needs bf16")
    a = torch.cat([layer.lora_A[n].weight.detach().float() for n in names])
    b = torch.cat([layer.lora_B[n].weight.detach().float() * layer.scaling[n] for n in names], 1)
    return a, b


def _int8_layer(linear: Any, copy: bool = False) -> Any:
    """Weight-only int8 for one linear layer (`quantize_int8`); with `copy`, prefills and steps
    of more than `INT8_ROWS` rows multiply by a copy of the rounded weights in the layer's dtype
    instead of dequantizing or taking the int8 kernel."""
    import torch  # heavy: torch

    class Int8Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            self.register_buffer("weight_int8", q)
            self.register_buffer("scales", scale.to(torch.bfloat16))
            dtype = linear.weight.dtype  # prefills: the rounded weights, as loaded
            self.copy = (torch.nn.Parameter(q.to(dtype) * self.scales.to(dtype)[:, None],
                                            requires_grad=False) if copy else None)
            self.bias = linear.bias
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, x.shape[-1])
            prefill = x.dim() > 2 and x.shape[-2] > 1
            if self.copy is not None and (prefill or flat.shape[0] > INT8_ROWS):
                y = flat @ self.copy.to(x.dtype).t()
            elif prefill:
                w = self.weight_int8.to(x.dtype) * self.scales.to(x.dtype)[:, None]
                y = flat @ w.t()
            else:
                y = torch._weight_int8pack_mm(flat.to(torch.bfloat16).contiguous(),
                                              self.weight_int8, self.scales).to(x.dtype)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int8Linear()


def _int4_layer(linear: Any, group: int, rounding: tuple[Any, Any, Any, Any],
                low_rank: tuple[Any, Any] | None) -> Any:
    import torch  # heavy: torch
    from torch.nn.functional import linear as product  # heavy: torch

    class Int4Linear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            q, scale, zero, deq = rounding
            if low_rank is not None:  # prefills: the adapter merged into the bf16 copy
                deq = deq + low_rank[1].float() @ low_rank[0].float()
            self.weight = torch.nn.Parameter(deq.to(torch.bfloat16), requires_grad=False)
            packed = torch._convert_weight_to_int4pack_for_cpu(q.to(torch.int32).contiguous(), 1)
            self.register_buffer("weight_int4", packed)
            scales_zeros = torch.stack([scale.squeeze(-1).t(), zero.squeeze(-1).t()], -1)
            self.register_buffer("scales_zeros", scales_zeros.to(torch.bfloat16).contiguous())
            for name, factor in zip(("lora_a", "lora_b"), low_rank or (None, None)):
                self.register_buffer(name, None if factor is None else
                                     factor.float().contiguous())
            self.group = group
            self.bias = linear.bias
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: Any) -> Any:
            if x.dim() > 2 and x.shape[-2] > 1:  # a prefill: the bf16 copy, adapter merged
                return product(x, self.weight, self.bias)
            flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16).contiguous()
            y = torch._weight_int4pack_mm_for_cpu(flat, self.weight_int4, self.group,
                                                  self.scales_zeros)
            if self.lora_a is not None:
                y = y + product(product(flat.float(), self.lora_a), self.lora_b).to(y.dtype)
            y = y.to(x.dtype).reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    return Int4Linear()
