"""Prompt templates as package data: render them to chat messages, versioned by content hash.

A template is a Jinja file under `workflows/prompts/<profile>/<name>.jinja` whose text is split
into messages by header lines `### system`, `### user` and `### assistant`. Rendering uses
`StrictUndefined`, so a missing variable is an error, never an empty string. Every rendered prompt
carries the template's name, profile and a short hash of its source, which each trace step
records, so training data can be traced back to (and rebuilt with) the exact prompt.

Profiles: `full` prompts are HDFlow-sized for capable models; `compact` prompts are short and
direct for small models. A profile falls back to `full` for a template it does not define.
This module knows nothing about backends or graphs.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import jinja2

from agentrt.core.errors import ConfigError
from agentrt.core.types import Message

__all__ = ["RenderedPrompt", "render", "template_source", "profile_for_model", "PROFILES"]

PROFILES = ("compact", "full")
_HEADER = re.compile(r"^### (system|user|assistant)\s*$", re.M)
_SMALL_MODELS = ("smollm2-135m", "135m", "360m", "tiny")
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
)


@dataclass(frozen=True)
class RenderedPrompt:
    """Messages ready for a backend, plus where they came from."""

    messages: tuple[Message, ...]
    template: str  # "<profile>/<name>"
    template_hash: str


def profile_for_model(model_id: str, setting: str = "auto") -> str:
    """Pick a prompt profile: an explicit setting wins; `auto` is compact for small models."""
    if setting in PROFILES:
        return setting
    if setting != "auto":
        raise ConfigError(f"unknown prompt profile {setting!r}; choose auto, compact or full")
    low = model_id.lower()
    return "compact" if any(tag in low for tag in _SMALL_MODELS) else "full"


@lru_cache(maxsize=128)
def template_source(name: str, profile: str) -> tuple[str, str]:
    """Return (qualified template name, source) for a template, with profile fallback."""
    root = resources.files("agentrt.workflows") / "prompts"
    for prof in (profile, "full"):
        path = root / prof / f"{name}.jinja"
        if path.is_file():
            return f"{prof}/{name}", path.read_text(encoding="utf-8")
    raise ConfigError(f"no prompt template {name!r} in profile {profile!r}")


@lru_cache(maxsize=128)
def _compiled(qualified: str, source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render(name: str, profile: str = "full", **variables: object) -> RenderedPrompt:
    """Render a template into chat messages.

    Args:
        name: template name without extension, e.g. "fast_answer".
        profile: "compact" or "full".
        **variables: template variables; all referenced ones are required.

    Returns:
        The rendered messages with the template's name and content hash.

    Raises:
        ConfigError: unknown template or a variable the template needs is missing.
    """
    qualified, source = template_source(name, profile)
    try:
        text = _compiled(qualified, source).render(**variables)
    except jinja2.UndefinedError as e:
        raise ConfigError(f"prompt {qualified}: {e.message}") from None
    parts = _HEADER.split(text)
    messages = []
    for role, body in zip(parts[1::2], parts[2::2]):
        body = body.strip()
        if body:
            messages.append(Message(role=role, content=body))
    if not any(m.role == "user" for m in messages):
        raise ConfigError(f"prompt {qualified} renders no user message")
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    return RenderedPrompt(messages=tuple(messages), template=qualified, template_hash=digest)
