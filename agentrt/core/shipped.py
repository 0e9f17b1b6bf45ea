"""What the package ships: the embedded base model's name, the trained model's name, and the
adapter folders under `agentrt/llm/shipped/<name>/` (or `$AGENTRT_SHIPPED_DIR/<name>/`).

Reading a shipped adapter's manifest needs nothing but files and pydantic, so settings
(`agentrt.core.config`) can apply the runtime settings a shipped model carries without
importing the model layer. A folder that holds only some of the adapter's files, or a manifest
that does not parse, is damaged (`shipped_damage`: the folder and how to restore it), never
taken for a model that is not shipped. Exporting and merging adapters is `agentrt.llm.adapters`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agentrt.core.errors import ModelNotFoundError, first_problem

__all__ = ["ADAPTER_CONFIG", "ADAPTER_MANIFEST", "ADAPTER_WEIGHTS", "BASE_MODEL", "MODEL_CARD",
           "SHIPPED_ENV", "SHIPPED_MODEL", "SHIPPABLE_SETTINGS", "AdapterManifest",
           "read_manifest", "shipped_adapter", "shipped_damage", "shipped_present",
           "shipped_root"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_MANIFEST = "agentrt-adapter.json"
MODEL_CARD = "MODEL_CARD.md"
SHIPPED_ENV = "AGENTRT_SHIPPED_DIR"
BASE_MODEL = "smollm2-135m"
SHIPPED_MODEL = "smollm2-135m-agentrt"
# Runtime settings an adapter may carry; everything else (backend, paths, keys) is the user's.
SHIPPABLE_SETTINGS = ("prompt_profile", "router", "unknown_escalates", "limits")


class AdapterManifest(BaseModel):
    """`agentrt-adapter.json`: what an exported adapter is and how well it reproduces its model.

    Attributes:
        name: the model name the adapter is shipped as.
        base_model: the embedded model it applies to.
        adapter_sha256: sha256 of `adapter_model.safetensors`.
        rank, dtype, layers: the adapter's rank (the largest, where layers differ), storage
            dtype and number of adapted layers.
        mean_rank: the adapted layers' mean rank (None in manifests written before layers
            could differ).
        max_relative_error: largest ||BA - delta|| / ||delta|| over the adapted layers.
        max_abs_error: largest absolute entry of BA - delta over the adapted layers.
        ignored: weights other than linear ones that differ from the base and are not carried,
            with their relative difference (only when the export was told to allow that).
        source: where the trained model came from (version label and id), if known.
        settings: runtime settings meant for the model (see `SHIPPABLE_SETTINGS`).
        router: a router description meant for the model, recorded as given.
    """

    format: int = 1
    name: str
    base_model: str
    adapter_sha256: str
    rank: int
    dtype: str
    layers: int
    mean_rank: float | None = None
    max_relative_error: float
    max_abs_error: float
    ignored: dict[str, float] = Field(default_factory=dict)
    source: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    router: dict[str, Any] | None = None
    created_at: str = ""


def read_manifest(folder: str | Path) -> AdapterManifest:
    """The `agentrt-adapter.json` of an adapter folder (not checked against the weights).

    Raises:
        ModelNotFoundError: the file is missing, not JSON (the parser's message is kept), or
            not a valid manifest.
    """
    path = Path(folder) / ADAPTER_MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelNotFoundError(f"{folder} is not an exported adapter (no {ADAPTER_MANIFEST})",
                                 model=str(folder)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ModelNotFoundError(f"adapter manifest {path} is unreadable: {e}",
                                 model=str(folder)) from None
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ModelNotFoundError(f"adapter manifest {path} is not valid JSON: {e}",
                                 model=str(folder)) from None
    try:
        return AdapterManifest.model_validate(data)
    except ValidationError as e:
        raise ModelNotFoundError(f"adapter manifest {path} is invalid: "
                                 f"{first_problem(e, 'the manifest')}",
                                 model=str(folder)) from None


def shipped_root() -> Path:
    """Where shipped adapters live: `$AGENTRT_SHIPPED_DIR`, else the package's `shipped/`."""
    env = os.environ.get(SHIPPED_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "llm" / "shipped"


def _folder(name: str, root: str | Path | None) -> Path | None:
    if not name or "/" in name or name.startswith("."):
        return None
    return (Path(root) if root is not None else shipped_root()) / name


_NEEDED = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, ADAPTER_MANIFEST)


def shipped_adapter(name: str, root: str | Path | None = None) -> Path | None:
    """The shipped adapter folder of a model name, or None when none is shipped.

    A folder counts when it holds the adapter's config, weights and manifest; one that holds
    only some of them is damaged (`shipped_damage`), not absent.
    """
    folder = _folder(name, root)
    if folder is None:
        return None
    return folder if all((folder / f).is_file() for f in _NEEDED) else None


def shipped_present(name: str, root: str | Path | None = None) -> bool:
    """Whether a folder for `name` is shipped at all: it holds any of the adapter's files
    (complete or damaged)."""
    folder = _folder(name, root)
    return folder is not None and any((folder / f).is_file() for f in _NEEDED)


def _restore_hint(folder: Path, root: str | Path | None) -> str:
    if root is None and os.environ.get(SHIPPED_ENV):
        how = f"export it again with `agentrt models export-adapter`, or unset {SHIPPED_ENV}"
    else:
        how = f"`git checkout -- {folder}` in a source checkout, or reinstall agentrt"
    return (f"restore the folder ({how}), or choose another model with --model or "
            f"AGENTRT_MODEL (`{BASE_MODEL}` is the untrained base)")


def shipped_damage(name: str, root: str | Path | None = None) -> str | None:
    """Why the shipped folder of `name` cannot be used, or None when it is complete or absent.

    A folder that holds some of the adapter's files but not all, or whose manifest cannot be
    read, is damaged. The message names the folder and how to restore it.
    """
    folder = _folder(name, root)
    if folder is None or not shipped_present(name, root):
        return None
    missing = [f for f in _NEEDED if not (folder / f).is_file()]
    if missing:
        reason = f"the shipped model folder {folder} is incomplete (missing {', '.join(missing)})"
    else:
        try:
            read_manifest(folder)
            return None
        except ModelNotFoundError as e:
            reason = f"the shipped model {name} is damaged: {e}"
    return f"{reason}; {_restore_hint(folder, root)}"
