"""Templates of data synthesis as package data: `data_synth/prompts/**/*.jinja`.

Two kinds, with the conventions of `agentrt.workflows.prompts`: chat prompts, split into messages by
`### system` / `### user` / `### assistant` header lines (the problem writer, the fast/slow
routing decision), and plain-text templates with no headers (the gold replies a teacher trace
is scripted from, under `gold/`). Both render with `StrictUndefined`, so a missing variable is
an error, and every chat prompt carries its template name and a short content hash, like the
runtime's prompts. This module knows nothing about backends, traces or datasets.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from importlib import resources

import jinja2

from agentrt.core.errors import ConfigError
from agentrt.core.types import Message
from agentrt.workflows.prompts import RenderedPrompt

__all__ = ["render_prompt", "render_text", "template_hash"]

_HEADER = re.compile(r"^### (system|user|assistant)\s*$", re.M)
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False,
                          autoescape=False)


@lru_cache(maxsize=64)
def _source(name: str) -> str:
    path = resources.files("agentrt.data_synth") / "prompts" / f"{name}.jinja"
    if not path.is_file():
        raise ConfigError(f"no data synthesis template {name!r}")
    return path.read_text(encoding="utf-8")


def template_hash(name: str) -> str:
    """Short content hash of a template's source (what traces and dataset rows record)."""
    return hashlib.sha256(_source(name).encode()).hexdigest()[:12]


def _render(name: str, variables: dict[str, object]) -> str:
    try:
        return _ENV.from_string(_source(name)).render(**variables)
    except jinja2.UndefinedError as e:
        raise ConfigError(f"template data_synth/{name}: {e.message}") from None


def render_text(name: str, **variables: object) -> str:
    """Render a plain-text template (no message headers), stripped of surrounding blank space."""
    return _render(name, variables).strip()


def render_prompt(name: str, **variables: object) -> RenderedPrompt:
    """Render a chat template into messages, named `data_synth/<name>` with its content hash.

    Raises:
        ConfigError: unknown template, a missing variable, or no user message.
    """
    parts = _HEADER.split(_render(name, variables))
    messages = [Message(role=role, content=body.strip())
                for role, body in zip(parts[1::2], parts[2::2]) if body.strip()]
    if not any(m.role == "user" for m in messages):
        raise ConfigError(f"template data_synth/{name} renders no user message")
    return RenderedPrompt(messages=tuple(messages), template=f"data_synth/{name}",
                          template_hash=template_hash(name))
