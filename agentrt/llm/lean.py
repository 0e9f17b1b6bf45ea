"""A lean decode step for Llama-family models: one new token per row, the same numbers as
transformers' forward, a fraction of its per-step overhead.

At batch 1 on a CPU a 135M model's decode step is small enough that transformers' module calls,
keyword plumbing and 4-D mask building cost about a third of it. `LeanDecoder.step` runs the
same layers as plain tensor operations over fused weights (q, k and v in one product, gate and
up in another; the model's own tensors become views of the fused ones, so no memory is added),
writes keys and values through the batch's own KV cache layers, and attends with one
`scaled_dot_product_attention` call per layer. Prefills (many positions at once) stay with
transformers: there the arithmetic dominates.

Works for the weights as loaded (fp32, bf16) and for `agentrt.llm.quant`'s int8 and 4-bit layers
(a LoRA adapter kept beside 4-bit weights included); any
other model (another architecture, biases, a cache it cannot write) gets `None` from
`LeanDecoder.build` and keeps the plain forward.
"""

from __future__ import annotations

from typing import Any

from agentrt.llm.quant import INT8_ROWS

__all__ = ["LeanDecoder"]

_ROPE_TYPES = {"default", "llama3", "linear", "dynamic", "yarn", "longrope"}
# torch's CPU 4-bit packing lays rows out in blocks of 64: packed layers concatenate into one
# valid packed matrix only where every layer but the last fills whole blocks
_INT4_BLOCK = 64


class _Product:
    """`x @ W.T` for one fused weight: a plain matrix, int8 with per-row scales, or packed 4-bit
    with per-group scales and zeros (`group` weights each), plus LoRA factors kept beside 4-bit
    weights (`_LowRank`)."""

    def __init__(self, weight: Any, scales: Any = None, group: int = 0,
                 low_rank: "_LowRank | None" = None, copy: Any = None):
        self.weight, self.scales, self.group, self.low_rank = weight, scales, group, low_rank
        self.copy = copy  # int8: the rounded weights, for more than INT8_ROWS rows

    def __call__(self, x: Any) -> Any:
        import torch  # heavy: torch
        from torch.nn.functional import linear  # heavy: torch

        if self.scales is None:
            return linear(x, self.weight)
        if self.copy is not None and x.numel() // x.shape[-1] > INT8_ROWS:
            return linear(x, self.copy.to(x.dtype))
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        if self.group:
            y = torch._weight_int4pack_mm_for_cpu(flat, self.weight, self.group, self.scales)
        else:
            y = torch._weight_int8pack_mm(flat, self.weight, self.scales)
        if self.low_rank is not None:
            y = y + self.low_rank(flat)
        y = y.to(x.dtype)
        return y.view(*x.shape[:-1], y.shape[-1])


def _fuse(modules: list[Any]) -> _Product:
    """One product for several linear layers of one input; each layer's tensor becomes a view of
    the fused one (so the plain forward still works and nothing is stored twice; a 4-bit
    layer's small scales and LoRA factors are copied, its bf16 prefill copy stays its own; an
    int8 layer's rounded copy is fused too)."""
    import torch  # heavy: torch

    kind = _kind(modules[0])
    if any(_kind(m) != kind for m in modules) or (  # some layers left unrounded, or packed
            kind == "int4" and any(m.out_features % _INT4_BLOCK for m in modules[:-1])):
        return _Stacked([_single(m) for m in modules])  # blocks that would straddle layers
    name = {"int8": "weight_int8", "int4": "weight_int4"}.get(kind, "weight")
    fused = torch.cat([getattr(m, name).detach() for m in modules]).contiguous()
    scales = copy = None
    if kind == "int8":
        scales = torch.cat([m.scales for m in modules]).contiguous()
        if all(m.copy is not None for m in modules):
            copy = torch.cat([m.copy.detach() for m in modules]).contiguous()
    elif kind == "int4":  # (groups, rows, 2): rows are the second dimension
        scales = torch.cat([m.scales_zeros for m in modules], 1).contiguous()
    start = 0
    for m in modules:
        rows = getattr(m, name).shape[0]
        if kind == "int8":
            m.weight_int8, m.scales = fused[start:start + rows], scales[start:start + rows]
            if copy is not None:
                m.copy = torch.nn.Parameter(copy[start:start + rows], requires_grad=False)
        elif kind == "int4":
            m.weight_int4 = fused[start:start + rows]
        else:
            m.weight = torch.nn.Parameter(fused[start:start + rows], requires_grad=False)
        start += rows
    if kind != "int4":
        return _Product(fused, scales, copy=copy)
    return _Product(fused, scales, modules[0].group, _LowRank.of(modules))


class _Stacked:
    """Several layers' products, one after another, outputs side by side."""

    def __init__(self, products: list[_Product]):
        self.products = products

    def __call__(self, x: Any) -> Any:
        import torch  # heavy: torch

        return torch.cat([product(x) for product in self.products], -1)


class _LowRank:
    """The LoRA factors kept beside one or more fused 4-bit layers: `(x A^T) B^T` for each layer,
    outputs side by side (zeros for a layer without one). The layers' A are stacked so one
    product serves them all; each B multiplies only its own layer's columns. fp32: torch
    multiplies a row by such small matrices 5-10x faster in fp32 than in bf16."""

    def __init__(self, modules: list[Any]):
        import torch  # heavy: torch

        self.parts: list[tuple[slice | None, Any]] = []  # (columns of x A^T, B) or (None, rows)
        stacked, col = [], 0
        for m in modules:
            if m.lora_a is None:
                self.parts.append((None, m.out_features))
                continue
            rank = m.lora_a.shape[0]
            stacked.append(m.lora_a)
            self.parts.append((slice(col, col + rank), m.lora_b))
            col += rank
        self.a = torch.cat(stacked).contiguous()

    @classmethod
    def of(cls, modules: list[Any]) -> "_LowRank | None":
        return cls(modules) if any(getattr(m, "lora_a", None) is not None
                                   for m in modules) else None

    def __call__(self, x: Any) -> Any:
        import torch  # heavy: torch
        from torch.nn.functional import linear  # heavy: torch

        t = linear(x.float(), self.a)
        outs = [linear(t[:, cols], b) if cols is not None else t.new_zeros(t.shape[0], b)
                for cols, b in self.parts]
        return (outs[0] if len(outs) == 1 else torch.cat(outs, -1)).to(x.dtype)


def _kind(module: Any) -> str:
    """How a linear layer holds its weights: "int8", "int4" or "plain"."""
    if hasattr(module, "weight_int8"):
        return "int8"
    return "int4" if hasattr(module, "weight_int4") else "plain"


def _norm(module: Any) -> tuple[Any, float]:
    """An RMSNorm's (weight, eps), as `_rms` takes them."""
    return module.weight.detach(), module.variance_epsilon


def _single(module: Any) -> _Product:
    kind = _kind(module)
    if kind == "int8":
        return _Product(module.weight_int8, module.scales, copy=getattr(module, "copy", None))
    if kind == "int4":
        return _Product(module.weight_int4, module.scales_zeros, module.group,
                        _LowRank.of([module]))
    return _Product(module.weight.detach())


class LeanDecoder:
    """Decode steps of one loaded Llama-family causal LM (see the module's docstring)."""

    def __init__(self, model: Any):
        import torch  # heavy: torch

        config = model.config
        inner = model.model
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scaling = self.head_dim ** -0.5
        self.q_size, self.kv_size = self.heads * self.head_dim, self.kv_heads * self.head_dim
        self.inter = config.intermediate_size
        self.embed = inner.embed_tokens
        self.rotary = inner.rotary_emb
        self.norm = _norm(inner.norm)
        self.head = _single(model.lm_head)
        self.layers = []
        with torch.no_grad():
            for layer in inner.layers:
                attn, mlp = layer.self_attn, layer.mlp
                self.layers.append((
                    _norm(layer.input_layernorm),
                    _fuse([attn.q_proj, attn.k_proj, attn.v_proj]),
                    _single(attn.o_proj),
                    _norm(layer.post_attention_layernorm),
                    _fuse([mlp.gate_proj, mlp.up_proj]),
                    _single(mlp.down_proj),
                ))

    @classmethod
    def build(cls, model: Any) -> "LeanDecoder | None":
        """A decoder for `model`, or None where the lean step would not compute what its own
        forward computes."""
        config = getattr(model, "config", None)
        if config is None or getattr(config, "model_type", None) != "llama":
            return None
        rope = getattr(config, "rope_scaling", None) or getattr(config, "rope_parameters", None)
        rope_type = (rope or {}).get("rope_type", (rope or {}).get("type", "default"))
        if rope_type not in _ROPE_TYPES or getattr(config, "attention_bias", False) \
                or getattr(config, "mlp_bias", False) or config.hidden_act != "silu" \
                or getattr(config, "pretraining_tp", 1) != 1:
            return None
        if any(p.is_meta for p in model.parameters()):
            return None
        try:
            return cls(model)
        except (AttributeError, TypeError):
            return None

    def step(self, tokens: Any, mask: Any, positions: Any, cache: Any) -> Any:
        """Logits (rows x vocabulary, fp32) for one new token per row.

        Args:
            tokens: (rows,) the tokens just picked.
            mask: (rows, columns) the attention mask including the new column.
            positions: (rows, 1) each new token's position.
            cache: the batch's `DynamicCache`, holding columns - 1 columns per layer.
        """
        import torch  # heavy: torch
        from torch.nn.functional import scaled_dot_product_attention, silu  # heavy: torch

        rows = tokens.shape[0]
        with torch.no_grad():
            h = self.embed(tokens[:, None])  # (rows, 1, hidden)
            cos, sin = self.rotary(h, positions)
            cos, sin = cos[:, None], sin[:, None]  # (rows, 1, 1, head_dim)
            attend = None if bool(mask.all()) else mask[:, None, None, :].bool()
            half = self.head_dim // 2
            layers = getattr(cache, "layers", None)
            for i, (n1, qkv, out, n2, gate_up, down) in enumerate(self.layers):
                x = _rms(h, *n1)
                mixed = qkv(x)
                qk = mixed[..., :self.q_size + self.kv_size].view(
                    rows, 1, self.heads + self.kv_heads, self.head_dim).transpose(1, 2)
                qk = qk * cos + torch.cat((-qk[..., half:], qk[..., :half]), -1) * sin
                q, k = qk[:, :self.heads], qk[:, self.heads:]
                v = mixed[..., self.q_size + self.kv_size:].view(
                    rows, 1, self.kv_heads, self.head_dim).transpose(1, 2)
                if layers is not None and len(layers) > i:
                    keys, values = layers[i].update(k, v)
                else:
                    keys, values = cache.update(k, v, i)
                a = scaled_dot_product_attention(q, keys, values, attn_mask=attend,
                                                 scale=self.scaling,
                                                 enable_gqa=self.heads != self.kv_heads)
                h = h + out(a.transpose(1, 2).reshape(rows, 1, self.q_size))
                x = gate_up(_rms(h, *n2))
                h = h + down(silu(x[..., :self.inter]) * x[..., self.inter:])
            return self.head(_rms(h, *self.norm))[:, -1, :].float()


def _rms(h: Any, weight: Any, eps: float) -> Any:
    """transformers' RMSNorm: normalized in fp32, scaled in the input's dtype."""
    import torch  # heavy: torch

    x = h.float()
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(h.dtype)
