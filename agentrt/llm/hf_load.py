"""Loading a model for the hf backend: the device, the weights' precision, the model and its
tokenizer (from a directory, a hub id or a PEFT adapter over an embedded base)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from agentrt.core.errors import BackendUnavailableError, ConfigError
from agentrt.llm.models import CHATML_TEMPLATE, model_not_found, resolve_model

__all__ = ["load_model", "native_bf16", "pick_device", "pick_dtype", "quantize_int8"]


def pick_device(device: str) -> str:
    import torch  # heavy: torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


# int8 is weight-only: the model loads in fp32, then its linear layers keep int8 weights
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "float32"}


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo
    (False where it cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_dtype(dtype: str, device: str) -> Any:
    """The torch dtype the weights load in: `auto` is bf16 on a GPU and on a CPU that multiplies
    bf16 natively (measured 1.9x faster evaluations than fp32 at the same accuracy,
    benchmarks/README.md), fp32 on other CPUs; `int8` loads fp32 (then `quantize_int8`)."""
    import torch  # heavy: torch

    if dtype == "auto":
        return torch.bfloat16 if device != "cpu" or native_bf16() else torch.float32
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be 'auto', 'fp32', 'bf16', 'fp16' or 'int8', not {dtype!r}")
    if dtype == "fp16" and device == "cpu":
        raise ConfigError("dtype fp16 is for GPUs; on CPU use bf16 or fp32")
    if dtype == "int8" and device != "cpu":
        raise ConfigError("dtype int8 (weight-only) is for CPUs; on a GPU use bf16")
    return getattr(torch, _DTYPES[dtype])


def quantize_int8(model: Any) -> int:
    """Replace every linear layer of `model` by weight-only int8 (in place); the count replaced.

    Each output channel's weights are scaled to [-127, 127] by their largest magnitude
    (symmetric, per channel) and stored as int8, a quarter of fp32's bytes; a decode step
    multiplies bf16 activations by them with torch's `_weight_int8pack_mm` CPU kernel (built for
    a few rows: faster than fp32's up to 16-24 rows, slower beyond), a prefill (more than one
    position) dequantizes to fp32 first, so a prompt gets the same numbers alone or batched
    (decode steps may round differently with other rows beside them, as bf16 does); either way
    the layer hands back its input dtype, and everything else (norms, attention, the KV cache)
    stays in fp32. The output layer is quantized too: with tied embeddings it is the largest
    matrix, and the input embedding keeps its own fp32 copy.
    """
    import torch  # heavy: torch

    class Int8Linear(torch.nn.Module):
        def __init__(self, linear: Any) -> None:
            super().__init__()
            w = linear.weight.detach().float()
            scale = w.abs().amax(dim=1).clamp(min=1e-8) / 127.0
            q = torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            self.register_buffer("weight_int8", q)
            self.register_buffer("scales", scale.to(torch.bfloat16))
            self.bias = linear.bias
            self.in_features, self.out_features = linear.in_features, linear.out_features

        def forward(self, x: Any) -> Any:
            flat = x.reshape(-1, x.shape[-1])
            if x.dim() > 2 and x.shape[-2] > 1:  # a prefill: dequantize, one fp32 product
                w = self.weight_int8.to(x.dtype) * self.scales.to(x.dtype)[:, None]
                y = flat @ w.t()
            else:
                y = torch._weight_int8pack_mm(flat.to(torch.bfloat16).contiguous(),
                                              self.weight_int8, self.scales).to(x.dtype)
            y = y.reshape(*x.shape[:-1], self.out_features)
            return y if self.bias is None else y + self.bias

    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(parent, name, Int8Linear(child))
                count += 1
    return count


def load_model(source: str, device: str, home: Any, dtype: Any) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a directory, a hub id, or a PEFT adapter directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers

    adapter = Path(source) / "adapter_config.json"
    tok_source = source
    try:
        if adapter.is_file():
            base = json.loads(adapter.read_text()).get("base_model_name_or_path") or ""
            base_path = resolve_model(base, home)
            model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
            try:
                from peft import PeftModel  # heavy: peft
            except ImportError:
                raise BackendUnavailableError("loading a LoRA adapter needs peft: pip install peft") from None
            model = PeftModel.from_pretrained(model, source).merge_and_unload()
            if not (Path(source) / "tokenizer_config.json").is_file():
                tok_source = base_path
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(tok_source)
    except (OSError, ValueError) as e:
        raise model_not_found(source, str(e).splitlines()[0][:300]) from None
    model.to(device).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return model, tokenizer
