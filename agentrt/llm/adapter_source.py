"""From what a user names to an exported adapter: `agentrt models export-adapter`'s work.

`export_from_source` resolves the trained model (a directory, or a registered version:
`promoted`, `v3`, `mv-...`), its embedded base (pulled if needed), what the registry knows
about the version (datasets and their hashes, training configs, scores: they fill the model
card), and the runtime settings to ship: the prompt profile and limits the version was trained
and evaluated with, overridden by a `--settings` file. Then it calls
`agentrt.llm.adapters.export_adapter`.

The registry's record of a version (`agentrt.store.records.ModelVersion`) comes from the store,
through `agentrt.llm.versions`; a plain directory has none and its card keeps placeholders.
"""

from __future__ import annotations

import json
import shlex
import tomllib
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError, ModelNotFoundError
from agentrt.llm.adapters import BASE_MODEL, SHIPPED_MODEL, AdapterExport, export_adapter
from agentrt.llm.model_card import CardInfo
from agentrt.llm.models import EMBEDDED_MODELS, resolve_model
from agentrt.llm.versions import find_version, is_version_ref, resolve_version
from agentrt.store import TraceStore
from agentrt.store.records import ModelVersion

__all__ = ["export_from_source", "read_settings_file", "root_base", "version_record"]


def read_settings_file(path: str | Path) -> dict[str, Any]:
    """Runtime settings from a TOML (flat or under `[agentrt]`) or JSON file.

    Raises:
        ConfigError: the file is missing or not valid TOML/JSON.
    """
    path = Path(path)
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except OSError as e:
        raise ConfigError(f"cannot read settings file {path}: {e}") from None
    except ValueError as e:  # JSONDecodeError and TOMLDecodeError are ValueErrors
        raise ConfigError(f"settings file {path} is not valid: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"settings file {path} must hold a table of settings")
    return dict(data.get("agentrt", data))


def _read_json(path: str | Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read JSON file {path}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object")
    return data


def version_record(ref: str, settings: Any) -> ModelVersion:
    """The registry's record of a version (`promoted`, `v3`, `mv-...`) in `settings.db_url`.

    Raises:
        ModelNotFoundError: no such version.
    """
    store = TraceStore(settings.db_url)
    try:
        return find_version(ref, store=store)
    finally:
        store.close()


def _trained_settings(record: ModelVersion | None) -> dict[str, Any]:
    """The prompt profile and limits a version was trained and evaluated with."""
    config = (record.training or {}).get("config") if record is not None else None
    if not isinstance(config, dict):
        return {}
    found = {k: config[k] for k in ("prompt_profile", "limits") if config.get(k)}
    return found


def _command(source: str, out: Path, name: str, base: str | None, rank: int, dtype: str,
             settings_file: Path | None, router_file: Path | None,
             rank_error: float | None = None) -> str:
    parts = ["agentrt", "models", "export-adapter", source, "--out", str(out), "--name", name,
             "--rank", str(rank), "--dtype", dtype]
    for flag, value in (("--rank-error", rank_error), ("--base", base),
                        ("--settings", settings_file), ("--router", router_file)):
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)


def root_base(name: str) -> str:
    """The embedded base model `name` is built from (itself when it is a base or a directory):
    `smollm2-135m-agentrt` -> `smollm2-135m`."""
    while (found := EMBEDDED_MODELS.get(name)) is not None and found.base:
        name = found.base
    return name


def export_from_source(source: str, out: str | Path, *, settings: Any, name: str = SHIPPED_MODEL,
                       base: str | None = None, rank: int = 32, dtype: str = "bf16",
                       max_error: float = 0.02, rank_error: float | None = None,
                       settings_file: str | Path | None = None,
                       router_file: str | Path | None = None, train_command: str | None = None,
                       known_failures: list[str] | None = None, strict: bool = True,
                       overwrite: bool = False) -> AdapterExport:
    """Export the model `source` names as a LoRA adapter over its embedded base.

    Args:
        source: a trained model directory or a version reference (`promoted`, `v3`, `mv-...`).
        out: the adapter folder to write.
        settings: the CLI's `Settings` (home and registry database).
        name, rank, dtype, max_error, rank_error, strict, overwrite: see `export_adapter`.
        base: the base model (an embedded name or a directory); default: the version's base
            model, else `smollm2-135m`. An embedded model that is itself an adapter over a
            base (the shipped default, which a run may start from) stands for that base: an
            adapter ships over a base model, never over another adapter.
        settings_file: runtime settings to ship (TOML or JSON), over the version's own.
        router_file: a JSON router description to record in the manifest.
        train_command: the training command, for the model card.
        known_failures: known failures, for the model card.

    Raises:
        ModelNotFoundError: no such directory or version, or the base cannot be found.
        ConfigError: unreadable settings or router files, or settings an adapter cannot carry.
        InvalidInputError: see `export_adapter`.
    """
    record: ModelVersion | None = None
    origin: dict[str, str] = {}
    if is_version_ref(source):
        found = record = resolve_version(source, settings.db_url, settings.home)
        merged_dir, origin = Path(found.path), {"version": f"v{found.number}", "id": found.id}
        base_name = base or found.base_model or BASE_MODEL
    else:
        merged_dir, base_name = Path(source).expanduser(), base or BASE_MODEL
        if not (merged_dir / "config.json").is_file():
            raise ModelNotFoundError(f"{source!r} is neither a model directory (config.json) "
                                     "nor a model version (promoted, v3, mv-...)", model=source)
    base_name = root_base(base_name)
    base_dir = Path(resolve_model(base_name, settings.home, progress=True))
    shipped = _trained_settings(record)
    if settings_file is not None:
        extra = read_settings_file(settings_file)
        limits = {**shipped.get("limits", {}), **extra.get("limits", {})}
        shipped = {**shipped, **extra, **({"limits": limits} if limits else {})}
    card = CardInfo(version=origin.get("version"), version_id=origin.get("id"),
                    datasets=list(record.datasets) if record is not None else [],
                    training=dict(record.training) if record is not None else {},
                    metrics=dict(record.metrics) if record is not None else {},
                    train_command=train_command, known_failures=list(known_failures or []),
                    export_command=_command(source, Path(out), name, base, rank, dtype,
                                            settings_file and Path(settings_file),
                                            router_file and Path(router_file), rank_error))
    router = _read_json(router_file) if router_file is not None else None
    return export_adapter(merged_dir, base_dir, out, name=name, base_model=base_name, rank=rank,
                          dtype=dtype, max_error=max_error, rank_error=rank_error,
                          strict=strict, settings=shipped,
                          router=router, source=origin, card=card, overwrite=overwrite)
