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
"""

from __future__ import annotations

import contextlib
import difflib
import logging
import math
import os
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from agentrt.core.errors import ConfigError, ModelNotFoundError
from agentrt.core.shipped import (
    BASE_MODEL,
    SHIPPABLE_SETTINGS,
    SHIPPED_ENV,
    SHIPPED_MODEL,
    read_manifest,
    shipped_adapter,
    shipped_damage,
    shipped_present,
)
from agentrt.core.types import MAX_TOKENS, TOOL_MAX_MEMORY_MB, TOOL_MAX_TIMEOUT_S

__all__ = ["Settings", "Limits", "load_settings", "default_home", "default_model", "check_settings",
           "shipped_settings", "split_base_urls"]


def default_home() -> Path:
    """Per-user data directory: models cache, default database, run outputs."""
    env = os.environ.get("AGENTRT_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "agentrt"


def split_base_urls(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """The server URLs in `value`: one URL, several separated by commas, or a list of them.

    Raises:
        ValueError: no URL, one that is not http(s)://host..., or one listed twice.
    """
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = []
    for part in parts:
        if not isinstance(part, str):
            raise ValueError(f"base_url entries must be strings, got {part!r}")  # noqa: TRY004 (pydantic reports ValueError)
        url = part.strip().rstrip("/")
        scheme, _, rest = url.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
            raise ValueError(f"base_url {part.strip()!r} is not an http(s) URL such as http://127.0.0.1:8000/v1")
        if url in urls:
            raise ValueError(f"base_url {url!r} is listed twice")
        urls.append(url)
    if not urls:
        raise ValueError("base_url names no URL")
    return urls


def default_model() -> str:
    """The project's trained model when its adapter folder is shipped, else the embedded base.

    A damaged shipped folder still names the trained model: loading it then fails with a
    message that says how to restore the folder, instead of running the base in its place.
    """
    return SHIPPED_MODEL if shipped_present(SHIPPED_MODEL) else BASE_MODEL


# The vote verifier's features (agentrt.workflows.slow.verifier computes them), named here so
# that weights are checked when settings load.
VERIFIER_FEATURES = (
    "share",          # share of the successful runs that printed this answer
    "first",          # the greedy call (the first run)
    "agrees_first",   # printed what the greedy call printed
    "coverage",       # share of the problem's numbers its program uses
    "best_coverage",  # no successful run uses more of them
    "integer",        # the answer is a whole number
    "negative",       # the answer is below zero
    "magnitude",      # log10(1 + |answer|) / 6: how large a quantity it claims
    "scale",          # log10((1 + |answer|) / (1 + the problem's largest number)) / 3, in [-1, 1]
    "long_fraction",  # not whole and not a short decimal (e.g. 7/3): seldom a final answer
    "given",          # the answer is one of the problem's own numbers (a step left out)
    "ok_share",       # share of all runs that ran cleanly (the same for every run)
)


# Off while `load_settings` and `check_settings` validate values they have already layered (or
# an adapter's own), so the environment is read once, at its place in the precedence.
_READ_ENV: ContextVar[bool] = ContextVar("agentrt_settings_read_env", default=True)


@contextlib.contextmanager
def _env_unread() -> Iterator[None]:
    token = _READ_ENV.set(False)
    try:
        yield
    finally:
        _READ_ENV.reset(token)


class _EnvSettings(BaseSettings):
    """Settings read from the environment on construction (and validation, as pydantic-settings
    does), except inside `_env_unread`."""

    @classmethod
    def settings_customise_sources(
            cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not _READ_ENV.get():
            return (init_settings,)
        return init_settings, env_settings, dotenv_settings, file_secret_settings


class Limits(_EnvSettings):
    """Budgets per solve and sizes the runtime enforces."""

    model_config = SettingsConfigDict(env_prefix="AGENTRT_LIMIT_", extra="forbid")

    max_problem_chars: int = Field(20_000, ge=1)
    max_tokens_per_call: int = Field(512, ge=1, le=MAX_TOKENS)
    max_llm_calls: int = Field(40, ge=1)
    max_total_tokens: int = Field(60_000, ge=1)
    max_tool_runs: int = Field(12, ge=0)
    max_wall_s: float = Field(900.0, gt=0)
    max_rounds: int = Field(2, ge=1)
    max_nodes: int = Field(8, ge=1)
    max_fan_out: int = Field(4, ge=1)
    max_repairs: int = Field(2, ge=0)
    tool_votes: int = Field(1, ge=1, le=16, description=(
        "Calls written per tool expert: with more than one, the greedy call and tool_votes - 1 "
        "sampled ones (at vote_temperature) all run, and the most frequent printed answer wins "
        "(self-consistency). Each run counts against max_tool_runs."))
    vote_temperature: float = Field(0.7, gt=0.0, le=2.0)
    vote_rule: Literal["majority", "coverage", "verifier"] = Field("majority", description=(
        "How tool votes pick: `majority` (most frequent answer, ties to the greedy call), "
        "`coverage` (the answer of the calls that use the most of the problem's own numbers, "
        "then the most frequent, then the greedy call's) or `verifier` (the run a learned "
        "logistic verifier scores highest; needs vote_weights)."))
    vote_weights: dict[str, float] | None = Field(None, description=(
        "The `verifier` rule's weights by feature name, plus `bias` "
        "(agentrt.workflows.slow.verifier; fitted by agentrt.training.verifier)."))
    # At most what the python tool accepts: a larger limit would fail every run of it.
    tool_timeout_s: float = Field(10.0, gt=0, le=TOOL_MAX_TIMEOUT_S)
    tool_memory_mb: int = Field(512, ge=32, le=TOOL_MAX_MEMORY_MB)

    @field_validator("vote_weights")
    @classmethod
    def _known_features(cls, v: dict[str, float] | None) -> dict[str, float] | None:
        if v is None:
            return v
        unknown = sorted(set(v) - set(VERIFIER_FEATURES) - {"bias"})
        if unknown:
            raise ValueError(f"unknown verifier features {unknown}; known: bias, "
                             f"{', '.join(VERIFIER_FEATURES)}")
        if not all(math.isfinite(x) for x in v.values()):
            raise ValueError("vote_weights must be finite numbers")
        return v

    @model_validator(mode="after")
    def _verifier_has_weights(self) -> "Limits":
        if self.vote_rule == "verifier" and not self.vote_weights:
            raise ValueError("vote_rule 'verifier' needs vote_weights")
        return self


class Settings(_EnvSettings):
    """Everything an entry point needs to build a runtime."""

    model_config = SettingsConfigDict(env_prefix="AGENTRT_", extra="forbid", env_nested_delimiter="__")

    backend: Literal["hf", "openai", "vllm", "fake"] = "hf"
    model: str = Field(default_factory=default_model)
    base_url: str | None = Field(None, description=(
        "OpenAI-compatible server URL ending in /v1. Several replicas: comma-separated (in "
        "AGENTRT_BASE_URL) or a list (in the TOML file); requests spread over the healthy ones "
        "(docs/SCALING.md). Kept as one comma-separated string."))
    replica_policy: Literal["least-busy", "round-robin", "prefix"] = Field("least-busy", description=(
        "How the openai backend picks among several base URLs: the replica with the fewest "
        "requests in flight, strict rotation, or `prefix` affinity (the same system and first "
        "user message to the same replica, for the server's prefix cache)."))
    api_key: str | None = None
    database_url: str | None = None
    device: str = "auto"
    dtype: Literal["auto", "fp32", "bf16", "fp16", "int8", "int4"] = Field("auto", description=(
        "Weights' precision on the hf backend: `auto` is int4 on a CPU that multiplies bf16 "
        "natively (AVX-512 BF16 or AMX), fp32 on other CPUs, bf16 on a GPU. `int4` (CPU only) "
        "keeps linear layers whose weights lie on a 4-bit grid (the embedded models' bases, "
        "which come from a Q4_1 file) in 4 bits, a LoRA adapter beside them unmerged, the "
        "output layer int8 and the rest bf16: decoding at 1.9-2.7x fp32, accuracy within the "
        "noise where measured; a model fine-tuned in full keeps bf16 layers. `bf16` "
        "decodes eight rows about 1.8x fp32; `int8` (CPU only) rounds every linear layer to "
        "int8; `fp32` gives the numbers the shipped model's scores were first measured in "
        "(benchmarks/README.md, 4-bit weights); fp16 is for GPUs."))
    lean_decode: bool = Field(True, description=(
        "hf backend on CPU: decode steps of Llama-family models run through a lean step over "
        "fused weights (agentrt.llm.lean) instead of transformers' forward: the same numbers, "
        "less overhead per step. False keeps the forward for every step."))
    prompt_profile: Literal["auto", "compact", "full"] = Field(
        "auto", description=(
            "Prompt profile (agentrt.workflows.profiles). An explicit name wins; `auto` uses the "
            "profile the model declares (a shipped adapter's settings, a catalog model in "
            "agentrt.llm.models: the embedded smollm2-135m models declare `compact`), else "
            "`full`."))
    router: str = "escalate"
    team_pattern: Literal["debate", "discuss", "pool"] = Field("debate", description=(
        "The pattern of `mode=\"team\"` when a solve names none (agentrt.workflows.team): "
        "`debate`, `discuss`, or `pool` (the agents share what they know, then a python tool "
        "computes the answer)."))
    unknown_escalates: bool = True
    sandbox_strict: bool = False
    home: Path = Field(default_factory=default_home)
    limits: Limits = Field(default_factory=Limits)
    # OpenTelemetry export of finished solves (agentrt.telemetry, docs/TELEMETRY.md): off unless
    # `otel_export` is true or `otel_endpoint` is set.
    otel_export: bool = False
    otel_endpoint: str | None = Field(None, description=(
        "OTLP/HTTP endpoint: a collector's base URL (`/v1/traces` is appended) or the full "
        "traces URL. Unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT, "
        "then http://localhost:4318."))
    otel_service_name: str = "agentrt"
    otel_capture_content: bool = False
    otel_timeout_s: float = Field(10.0, gt=0)
    otel_set_global: bool = False

    @field_validator("model")
    @classmethod
    def _model_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("model must not be empty")
        return v.strip()

    @field_validator("home", mode="before")
    @classmethod
    def _home_set(cls, v: Any) -> Any:
        # Empty means unset, as `default_home` reads AGENTRT_HOME: not the current directory.
        return default_home() if isinstance(v, str) and not v.strip() else v

    @field_validator("home")
    @classmethod
    def _home_expanded(cls, v: Path) -> Path:
        try:
            return v.expanduser()
        except RuntimeError as e:  # ~user that does not exist, or no home directory
            raise ValueError(f"cannot expand {str(v)!r}: {e}") from None

    @field_validator("base_url", mode="before")
    @classmethod
    def _base_urls(cls, v: Any) -> str | None:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        if not isinstance(v, (str, list, tuple)):
            raise ValueError(f"base_url must be a URL or a list of URLs, got {v!r}")  # noqa: TRY004 (pydantic reports ValueError)
        return ",".join(split_base_urls(v))

    @field_validator("otel_endpoint")
    @classmethod
    def _otel_endpoint_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        scheme, _, rest = v.partition("://")
        if scheme.lower() not in ("http", "https") or not rest or rest.startswith("/"):
            raise ValueError(f"otel_endpoint {v!r} is not an http(s) URL such as "
                             "http://localhost:4318")
        return v

    @field_validator("otel_service_name")
    @classmethod
    def _otel_service_name_nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("otel_service_name must not be empty")
        return v.strip()

    @property
    def otel_enabled(self) -> bool:
        """Whether finished solves are exported as OpenTelemetry spans."""
        return self.otel_export or self.otel_endpoint is not None

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to a SQLite file under `home`."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'agentrt.db'}"


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
        with _env_unread():  # already in `layered`, above the file
            return Settings.model_validate(layered)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "settings"
        raise ConfigError(f"invalid setting {loc}: {first['msg']}") from None


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
        with _env_unread():  # the adapter's values alone
            limits = Limits.model_validate(settings.get("limits") or {})
            Settings.model_validate({k: v for k, v in settings.items() if k != "limits"})
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"invalid adapter setting {'.'.join(map(str, first['loc']))}: "
                          f"{first['msg']}") from None
    if "limits" in settings:
        settings["limits"] = limits.model_dump(exclude_unset=True)
    return settings


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
