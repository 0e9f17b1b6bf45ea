"""Server settings: `AGENTRT_SERVER_*` environment variables, validated once at start-up.

Only what the HTTP layer enforces lives here (keys, sizes, concurrency, deadlines, idempotency).
Which backend, model and database serve the requests is the runtime's `Settings`, not this.
"""

from __future__ import annotations

import re

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["ServerConfig"]


class ServerConfig(BaseSettings):
    """Limits and switches of the OpenAI-compatible server.

    Attributes:
        api_keys: accepted Bearer keys (comma-separated in the environment); empty = no auth.
        max_body_bytes: largest request body; larger ones get 413 before any parsing.
        max_messages: most messages in one chat request.
        max_message_chars: most characters in one message (or one legacy prompt).
        max_n: most choices per request.
        max_tokens: most tokens a request may ask for (`max_tokens` / `max_completion_tokens`).
        default_max_tokens: the chat token limit when a passthrough request names none.
        max_concurrency: requests served at once by one worker; more get 429 + Retry-After.
        retry_after_s: the Retry-After value sent with 429.
        request_timeout_s: deadline of one request; past it the solve is cancelled (504).
        idempotency_ttl_s: how long an `Idempotency-Key` result is kept for replays.
        stream_step_chars: most characters of one progress step streamed as reasoning.
        shutdown_grace_s: on SIGTERM or Ctrl-C, requests in flight get this long (less a
            margin of up to 5 s) to finish; then they are cancelled and the worker exits.
        cors_origins: web origins whose pages may call the API from a browser (comma-separated
            in the environment, `*` for any); empty = no CORS headers, browsers refuse.
    """

    model_config = SettingsConfigDict(env_prefix="AGENTRT_SERVER_", extra="forbid")

    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_messages: int = Field(256, ge=1)
    max_message_chars: int = Field(100_000, ge=1)
    max_n: int = Field(8, ge=1, le=16)
    max_tokens: int = Field(4096, ge=1, le=32768)
    default_max_tokens: int = Field(512, ge=1, le=32768)
    max_concurrency: int = Field(32, ge=1)
    retry_after_s: int = Field(1, ge=1)
    request_timeout_s: float = Field(900.0, gt=0)
    idempotency_ttl_s: float = Field(86_400.0, gt=0)
    stream_step_chars: int = Field(4000, ge=100)
    shutdown_grace_s: float = Field(30.0, ge=2.0, le=3600.0)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _split_keys(cls, v: object) -> object:
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    @model_validator(mode="after")
    def _check_keys(self) -> "ServerConfig":
        for key in self.api_keys:
            if len(key) < 8 or any(c.isspace() for c in key):
                raise ValueError("API keys must be at least 8 characters, without whitespace")
        for origin in self.cors_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ValueError(f"a CORS origin is '*' or scheme://host[:port] without a path, "
                                 f"not {origin!r}")
        return self
