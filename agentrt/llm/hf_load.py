"""Loading a model for the hf backend: the device, the weights' precision, the model and its
tokenizer (from a directory, a hub id or a PEFT adapter over an embedded base)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentrt.core.errors import BackendUnavailableError, ConfigError
from agentrt.llm.models import CHATML_TEMPLATE, model_not_found, resolve_model

__all__ = ["load_model", "pick_device", "pick_dtype"]


def pick_device(device: str) -> str:
    import torch  # heavy: torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def pick_dtype(dtype: str, device: str) -> Any:
    """The torch dtype for the weights: `auto` is fp32 on CPU and bf16 on a GPU."""
    import torch  # heavy: torch

    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be 'auto', 'fp32', 'bf16' or 'fp16', not {dtype!r}")
    if dtype == "fp16" and device == "cpu":
        raise ConfigError("dtype fp16 is for GPUs; on CPU use bf16 or fp32")
    return getattr(torch, _DTYPES[dtype])


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
