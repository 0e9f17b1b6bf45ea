"""Loading a model for the hf backend: the device, the weights' precision, the model and its
tokenizer (from a directory, a hub id or a PEFT adapter over an embedded base)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from agentrt.core.errors import (
    AgentrtError,
    BackendUnavailableError,
    ConfigError,
    ModelNotFoundError,
)
from agentrt.core.shipped import ADAPTER_MANIFEST, shipped_adapter
from agentrt.llm.adapters import verify_adapter
from agentrt.llm.models import (
    CHATML_TEMPLATE,
    EMBEDDED_MODELS,
    model_not_found,
    models_dir,
    resolve_model,
)

__all__ = ["load_model", "native_bf16", "pick_device", "pick_dtype", "pick_precision"]


def pick_device(device: str) -> str:
    import torch  # heavy: torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


# int8 and int4 are weight-only: the model loads in fp32 (int8) or bf16 (int4: torch's 4-bit
# CPU kernel is vectorized for bf16 activations only), then its linear layers are quantized
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "int8": "float32",
           "int4": "bfloat16"}


@functools.lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), read from /proc/cpuinfo
    (False where it cannot be read)."""
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="replace").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(dtype: str, device: str) -> str:
    """The precision a `dtype` setting means on `device`: `auto` is int4 on a CPU that
    multiplies bf16 natively (4-bit weights where they lie on a 4-bit grid, as the embedded
    models' do, bf16 elsewhere: 1.9-2.7x fp32's decode speed, accuracy within the noise,
    benchmarks/README.md), fp32 on other CPUs, bf16 on a GPU; other names are checked and kept.
    """
    if dtype == "auto":
        return "bf16" if device != "cpu" else "int4" if native_bf16() else "fp32"
    if dtype not in _DTYPES:
        raise ConfigError(
            f"dtype must be 'auto', 'fp32', 'bf16', 'fp16', 'int8' or 'int4', not {dtype!r}")
    if dtype == "fp16" and device == "cpu":
        raise ConfigError("dtype fp16 is for GPUs; on CPU use bf16 or fp32")
    if dtype in ("int8", "int4") and device != "cpu":
        raise ConfigError(f"dtype {dtype} (weight-only) is for CPUs; on a GPU use bf16")
    return dtype


def pick_dtype(dtype: str, device: str) -> Any:
    """The torch dtype the weights load in for a `dtype` setting (see `pick_precision`): int8
    loads fp32 and int4 bf16, then `agentrt.llm.quant` rounds the linear layers."""
    import torch  # heavy: torch

    return getattr(torch, _DTYPES[pick_precision(dtype, device)])


def load_model(source: str, device: str, home: Any, dtype: Any,
               merge_adapter: bool = True) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a directory, a hub id, or a PEFT adapter directory.

    An adapter is merged into its base (no cost per token), or with `merge_adapter=False` left
    as peft LoRA layers inside the plain model (for `agentrt.llm.quant.quantize_int4`); a
    shipped model's merged directory then loads from the adapter it was merged from."""
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers

    if not merge_adapter:
        source = _adapter_behind(source)
    adapter = Path(source) / "adapter_config.json"
    tok_source = where = source
    try:
        if adapter.is_file():
            base = json.loads(adapter.read_text()).get("base_model_name_or_path") or ""
            base_path = where = resolve_model(base, home)
            model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
            where = source
            try:
                from peft import PeftModel  # heavy: peft
            except ImportError:
                raise BackendUnavailableError("loading a LoRA adapter needs peft: pip install peft") from None
            model = PeftModel.from_pretrained(model, source)
            model = model.merge_and_unload() if merge_adapter else model.base_model.model
            if not (Path(source) / "tokenizer_config.json").is_file():
                tok_source = base_path
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        where = tok_source
        tokenizer = AutoTokenizer.from_pretrained(tok_source)
    except AgentrtError:
        raise
    except Exception as e:  # noqa: BLE001 (safetensors, torch, json: any failure to load)
        raise _load_failed(str(where), home, e) from None
    model.to(device).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return model, tokenizer


def _load_failed(where: str, home: Any, e: Exception) -> ModelNotFoundError:
    """The error for a directory or hub id that failed to load; for a copy in the model cache,
    with how to build it again."""
    reason = (str(e).strip().splitlines() or [""])[0][:300]
    if not isinstance(e, (OSError, ValueError)) or not reason:
        reason = f"{type(e).__name__}: {reason}".rstrip(": ")
    path = Path(where)
    cached = path.name in EMBEDDED_MODELS and path.parent.resolve() == models_dir(home).resolve()
    if not cached:
        return model_not_found(where, reason)
    return ModelNotFoundError(
        f"cannot load model {path.name} from its cache {path}: {reason}; if the cached copy "
        f"is damaged, delete {path} or run `agentrt models pull --force {path.name}`",
        model=path.name)


def _adapter_behind(source: str) -> str:
    """The shipped adapter folder a merged model directory was made from (its manifest names it,
    with the same weights' hash, checked again here), or `source` where there is none."""
    try:
        meta = json.loads((Path(source) / ADAPTER_MANIFEST).read_text())
    except (OSError, ValueError):
        return source
    folder = shipped_adapter(str(meta.get("name", ""))) if isinstance(meta, dict) else None
    if folder is None or verify_adapter(folder).adapter_sha256 != meta.get("adapter_sha256"):
        return source
    return str(folder)
