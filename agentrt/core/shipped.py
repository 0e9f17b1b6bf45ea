"""What the package ships: the embedded base model's name, the trained model's name, and the
adapter folders under `agentrt/llm/shipped/<name>/` (or `$AGENTRT_SHIPPED_DIR/<name>/`).

Reading a shipped adapter's manifest needs nothing but files and pydantic, so settings
(`agentrt.core.config`) can apply the runtime settings a shipped model carries without
importing the model layer. Exporting and merging adapters is `agentrt.llm.adapters`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from agentrt.core.errors import ModelNotFoundError

__all__ = ["ADAPTER_CONFIG", "ADAPTER_MANIFEST", "ADAPTER_WEIGHTS", "BASE_MODEL", "MODEL_CARD",
           "SHIPPED_ENV", "SHIPPED_MODEL", "SHIPPABLE_SETTINGS", "AdapterManifest",
           "read_manifest", "shipped_adapter", "shipped_root"]

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
        rank, dtype, layers: the adapter's rank, storage dtype and number of adapted layers.
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
        ModelNotFoundError: the file is missing or invalid.
    """
    path = Path(folder) / ADAPTER_MANIFEST
    try:
        return AdapterManifest.model_validate_json(path.read_text())
    except FileNotFoundError:
        raise ModelNotFoundError(f"{folder} is not an exported adapter (no {ADAPTER_MANIFEST})",
                                 model=str(folder)) from None
    except (OSError, ValidationError) as e:
        reason = str(e).splitlines()[0][:200]
        raise ModelNotFoundError(f"adapter manifest {path} is unreadable: {reason}",
                                 model=str(folder)) from None


def shipped_root() -> Path:
    """Where shipped adapters live: `$AGENTRT_SHIPPED_DIR`, else the package's `shipped/`."""
    env = os.environ.get(SHIPPED_ENV)
    return Path(env).expanduser() if env else Path(__file__).resolve().parents[1] / "llm" / "shipped"


def shipped_adapter(name: str, root: str | Path | None = None) -> Path | None:
    """The shipped adapter folder of a model name, or None when none is shipped.

    A folder counts when it holds the adapter's config, weights and manifest.
    """
    if not name or "/" in name or name.startswith("."):
        return None
    folder = Path(root) if root is not None else shipped_root()
    folder = folder / name
    needed = (ADAPTER_CONFIG, ADAPTER_WEIGHTS, ADAPTER_MANIFEST)
    return folder if all((folder / f).is_file() for f in needed) else None
