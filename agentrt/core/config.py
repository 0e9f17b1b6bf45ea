"""Settings: `AGENTRT_*` environment variables, an optional TOML config file, explicit overrides.

Precedence, highest first: keyword overrides passed to `load_settings`, environment variables,
the config file (`AGENTRT_CONFIG` or `./agentrt.toml` when present), the runtime settings the
chosen model ships with (`shipped_settings`), defaults. `limits` merge field by field across
those layers, so an environment variable for one limit (`AGENTRT_LIMIT_MAX_LLM_CALLS`, or the
nested form `AGENTRT_LIMITS__MAX_LLM_CALLS`) beats that limit in the file's `[limits]` table and
leaves the file's other limits in place. Environment variables are read as pydantic-settings
reads them (names in any case); an `AGENTRT_*` variable that names no setting is ignored with a
warning (naming the closest known one when one is close). Settings are loaded once at an entry
point and passed down explicitly; nothing reads them implicitly.

The config file is flat (settings at the top level, limits in `[limits]`) or keeps everything in
one `[agentrt]` table; a file with both is refused, naming the keys that would be ignored.

The default model is the project's trained model, `smollm2-135m-agentrt`, when its adapter is
shipped in the package, else the untrained embedded base `smollm2-135m`. A shipped folder that
is damaged (files missing, manifest unreadable) stays the default: its settings are left out,
and loading the model fails with a message that says how to restore the folder.

The models themselves (`Settings`, `Limits`, their defaults) live in `agentrt.core.settings`
and are re-exported here.
"""

from __future__ import annotations

import difflib
import logging
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError

from agentrt.core.errors import ConfigError, ModelNotFoundError, first_problem
from agentrt.core.settings import (
    VERIFIER_FEATURES,
    Limits,
    Settings,
    default_home,
    default_model,
    env_unread,
    split_base_urls,
)
from agentrt.core.shipped import (
    SHIPPABLE_SETTINGS,
    SHIPPED_ENV,
    read_manifest,
    shipped_adapter,
    shipped_damage,
)

__all__ = ["Settings", "Limits", "load_settings", "default_home", "default_model", "check_settings",
           "shipped_settings", "shipped_profile", "split_base_urls", "VERIFIER_FEATURES"]


def _read_config_file(path: Path) -> dict[str, Any]:
    """The settings in a TOML file: the flat form, or the `[agentrt]` table when there is one.

    Raises:
        ConfigError: unreadable, not UTF-8, not TOML, or a table mixed with top-level keys.
    """
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"config file {path} is not UTF-8 text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e}") from None
    if "agentrt" not in data:
        return data
    table = data["agentrt"]
    if not isinstance(table, dict):
        raise ConfigError(f"config file {path}: `agentrt` must be a table ([agentrt]), "
                          f"not {type(table).__name__}")
    outside = sorted(k for k in data if k != "agentrt")
    if outside:
        raise ConfigError(
            f"config file {path} has an [agentrt] table and settings outside it "
            f"({', '.join(outside)}), which would be ignored: move them into [agentrt] "
            "(limits as [agentrt.limits]) or drop the [agentrt] line")
    return table


def _layered(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """The layers merged, later ones winning; `limits` tables merge field by field."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Limits):
                value = value.model_dump(exclude_unset=True)
            below = out.get(key)
            if key == "limits" and isinstance(value, Mapping) and isinstance(below, Mapping):
                out[key] = {**below, **value}
            else:
                out[key] = value
    return out


def _env_values() -> dict[str, Any]:
    """The settings the environment sets, as pydantic-settings parses them: `AGENTRT_<NAME>`
    (any case), `AGENTRT_LIMITS` (JSON) and `AGENTRT_LIMITS__<NAME>`, then `AGENTRT_LIMIT_<NAME>`
    over both for the same limit.

    Raises:
        ConfigError: a value that must be JSON is not, or `AGENTRT_LIMITS` is not an object.
    """
    try:
        values = EnvSettingsSource(Settings)()
        limits = EnvSettingsSource(Limits)()
    except SettingsError as e:
        raise ConfigError(f"invalid AGENTRT_* environment variable: {e} (nested settings such "
                          "as AGENTRT_LIMITS take a JSON object; one limit is "
                          "AGENTRT_LIMIT_<NAME>)") from None
    if not isinstance(values.get("limits", {}), Mapping):
        raise ConfigError("AGENTRT_LIMITS must be a JSON object such as "
                          '{"max_llm_calls": 10}, not ' + repr(values["limits"]))
    return _layered(values, {"limits": limits}) if limits else values


# AGENTRT_* variables that other parts of agentrt read (the server's settings have their own
# prefix and class, agentrt.server.config), and prefixes left to them.
_OTHER_ENV = ("AGENTRT_CONFIG", SHIPPED_ENV, "AGENTRT_DATA", "AGENTRT_TORCH",
              "AGENTRT_TORCH_INDEX", "AGENTRT_CONSTRAINTS", "AGENTRT_UI_SCREENSHOTS")
_OTHER_PREFIXES = ("AGENTRT_SERVER_", "AGENTRT_TEST_")
_warned: set[str] = set()
log = logging.getLogger(__name__)


def _warn_unknown_env() -> None:
    """Log a warning, once per name, for each `AGENTRT_*` variable that no part of agentrt
    reads, with the closest known name when one is close."""
    known = {f"AGENTRT_{n.upper()}" for n in Settings.model_fields} | set(_OTHER_ENV)
    known |= {f"AGENTRT_LIMIT{sep}{n.upper()}" for n in Limits.model_fields for sep in ("_", "S__")}
    suffixes = {k.removeprefix("AGENTRT_"): k for k in known}
    for name in os.environ:
        upper = name.upper()
        if (not upper.startswith("AGENTRT_") or upper in known or name in _warned
                or upper.startswith(_OTHER_PREFIXES)):
            continue
        _warned.add(name)
        close = difflib.get_close_matches(upper.removeprefix("AGENTRT_"), suffixes, n=1,
                                          cutoff=0.75)
        hint = f"; did you mean {suffixes[close[0]]}?" if close else ""
        log.warning("environment variable %s is not an agentrt setting and is ignored%s",
                    name, hint)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the config file, the environment and explicit overrides.

    Args:
        config_file: a TOML file; defaults to `$AGENTRT_CONFIG`, then `./agentrt.toml` if present.
        **overrides: values that win over everything else (None values are ignored); `limits`
            (a dict or a `Limits`) replaces only the limits it sets.

    Returns:
        Validated settings.

    Raises:
        ConfigError: the file is unreadable or any value is invalid.
    """
    path = config_file or os.environ.get("AGENTRT_CONFIG")
    file_values: dict[str, Any] = {}
    if path:
        file_values = _read_config_file(Path(path))
    elif Path("agentrt.toml").is_file():
        file_values = _read_config_file(Path("agentrt.toml"))
    given = {k: v for k, v in overrides.items() if v is not None}
    _warn_unknown_env()
    merged = _layered(file_values, _env_values(), given)
    model = merged.get("model")
    model = str(model).strip() if model is not None else default_model()
    layered = _layered(_applicable_shipped(model), merged)
    try:
        with env_unread():  # already in `layered`, above the file
            return Settings.model_validate(layered)
    except ValidationError as e:
        raise ConfigError(f"invalid setting {first_problem(e, 'settings')}") from None


def _applicable_shipped(model: str) -> dict[str, Any]:
    """The runtime settings `model` ships with, or none when its shipped folder is damaged
    (commands that need no model keep working; loading the model reports the damage)."""
    try:
        return shipped_settings(model)
    except ModelNotFoundError:  # only a damaged folder raises it
        return {}


def check_settings(settings: dict[str, Any] | None) -> dict[str, Any]:
    """Validate runtime settings an adapter is to carry; return a plain copy.

    Raises:
        ConfigError: a key outside `SHIPPABLE_SETTINGS`, an invalid value, or a learned router
            (a saved router lives in the user's home, so an adapter cannot point at one).
    """

    settings = dict(settings or {})
    unknown = sorted(set(settings) - set(SHIPPABLE_SETTINGS))
    if unknown:
        raise ConfigError(f"an adapter cannot carry the setting(s) {unknown}; allowed: "
                          f"{', '.join(SHIPPABLE_SETTINGS)}")
    if str(settings.get("router", "")).startswith("learned"):
        raise ConfigError("an adapter cannot name a learned router as its setting: the saved "
                          "router would be missing on other machines")
    try:
        with env_unread():  # the adapter's values alone
            limits = Limits.model_validate(settings.get("limits") or {})
            Settings.model_validate({k: v for k, v in settings.items() if k != "limits"})
    except ValidationError as e:
        raise ConfigError(f"invalid adapter setting {first_problem(e, 'settings')}") from None
    if "limits" in settings:
        settings["limits"] = limits.model_dump(exclude_unset=True)
    return settings


def shipped_profile(name: str) -> str | None:
    """The prompt profile a shipped model's settings name (the one it was trained with), or
    None: none named, nothing shipped, or a folder that loading the model will report."""
    try:
        return shipped_settings(name).get("prompt_profile")
    except (ModelNotFoundError, ConfigError):
        return None


def shipped_settings(name: str, root: str | Path | None = None) -> dict[str, Any]:
    """Runtime settings a shipped model carries (empty when none is shipped under `name`).

    `agentrt.core.config.load_settings` applies them below every setting a user gave.

    Raises:
        ModelNotFoundError: the shipped folder is damaged (`shipped_damage`).
        ConfigError: it carries settings that are not allowed or not valid.
    """
    damage = shipped_damage(name, root)
    if damage is not None:
        raise ModelNotFoundError(damage, model=name)
    folder = shipped_adapter(name, root)
    if folder is None:
        return {}
    return check_settings(read_manifest(folder).settings)
