"""The settings models: `Settings` (everything an entry point needs to build a runtime) and its
`Limits` (budgets per solve), with the defaults they read: `default_home`, `default_model` (the
shipped trained model when its adapter folder is present, else the embedded base) and the vote
verifier's feature names.

Both read `AGENTRT_*` environment variables on construction, as pydantic-settings does, except
inside `env_unread()`: `agentrt.core.config.load_settings` layers the environment itself, at its
place in the precedence, and validates the result there. Import these names from
`agentrt.core.config`, which re-exports them beside the loading functions.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from agentrt.core.shipped import BASE_MODEL, SHIPPED_MODEL, shipped_present
from agentrt.core.types import MAX_TOKENS, TOOL_MAX_MEMORY_MB, TOOL_MAX_TIMEOUT_S

__all__ = ["Settings", "Limits", "default_home", "default_model", "split_base_urls",
           "env_unread", "VERIFIER_FEATURES"]


def default_home() -> Path:
    """Per-user data directory: models cache, default database, run outputs."""
    env = os.environ.get("AGENTRT_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "share"
    return base / "agentrt"


def _http_url(url: str) -> bool:
    """Whether `url` is http(s)://host... (a scheme, then a host before any path)."""
    scheme, _, rest = url.partition("://")
    return scheme.lower() in ("http", "https") and bool(rest) and not rest.startswith("/")


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
        if not _http_url(url):
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
def env_unread() -> Iterator[None]:
    token = _READ_ENV.set(False)
    try:
        yield
    finally:
        _READ_ENV.reset(token)


class _EnvSettings(BaseSettings):
    """Settings read from the environment on construction (and validation, as pydantic-settings
    does), except inside `env_unread`."""

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
    prompt_profile: Literal["auto", "compact", "compact-numbers", "full"] = Field(
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

    @field_validator("model", "otel_service_name")
    @classmethod
    def _nonempty(cls, v: str, info: ValidationInfo) -> str:
        if not v.strip():
            raise ValueError(f"{info.field_name} must not be empty")
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
        if not _http_url(v):
            raise ValueError(f"otel_endpoint {v!r} is not an http(s) URL such as "
                             "http://localhost:4318")
        return v

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
