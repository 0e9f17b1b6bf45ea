"""Prompt templates as package data: one loader, rendered to chat messages, versioned by hash.

A template is a Jinja file of a package's `prompts/` folder. The runtime's live under
`workflows/prompts/<folder>/<name>.jinja`, one folder per prompt profile
(`agentrt.workflows.profiles`); data synthesis keeps its own under `data_synth/prompts/` and
renders them with the same functions here (`read_template`, `render_source`, `split_messages`,
`source_hash`). A chat template's text is split into messages by header lines `### system`,
`### user` and `### assistant`. Rendering uses `StrictUndefined`, so a missing variable is an
error, never an empty string. Every rendered prompt carries the template's name and a short
hash of its source, which each trace step records, so training data can be traced back to (and
rebuilt with) the exact prompt.

A profile falls back to its `fallback` folder for a template it does not define.
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
from agentrt.workflows.profiles import PromptProfile, get_profile

__all__ = ["RenderedPrompt", "render", "template_source", "read_template",
           "render_source", "split_messages", "source_hash"]

_HEADER = re.compile(r"^### (system|user|assistant)\s*$", re.M)
_ENV = jinja2.Environment(
    undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False
)


@dataclass(frozen=True)
class RenderedPrompt:
    """Messages ready for a backend, plus where they came from."""

    messages: tuple[Message, ...]
    template: str  # "<profile folder>/<name>" (runtime) or "data_synth/<name>"
    template_hash: str


@lru_cache(maxsize=256)
def read_template(package: str, path: str) -> str | None:
    """Source of `<package>/prompts/<path>.jinja`, or None when there is no such file."""
    *folders, name = path.split("/")
    found = resources.files(package) / "prompts"
    for folder in folders:
        found = found / folder
    found = found / f"{name}.jinja"
    return found.read_text(encoding="utf-8") if found.is_file() else None


def source_hash(source: str) -> str:
    """Short content hash of a template's source (what traces and dataset rows record)."""
    return hashlib.sha256(source.encode()).hexdigest()[:12]


@lru_cache(maxsize=256)
def _compiled(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render_source(source: str, variables: dict[str, object], label: str) -> str:
    """Render a template's source; `label` names it in errors.

    Raises:
        ConfigError: a variable the template needs is missing.
    """
    try:
        return _compiled(source).render(**variables)
    except jinja2.UndefinedError as e:
        raise ConfigError(f"{label}: {e.message}") from None


def split_messages(text: str, label: str) -> tuple[Message, ...]:
    """A rendered chat template as messages (empty ones dropped); `label` names it in errors.

    Raises:
        ConfigError: no user message.
    """
    parts = _HEADER.split(text)
    messages = tuple(Message(role=role, content=body.strip())
                     for role, body in zip(parts[1::2], parts[2::2]) if body.strip())
    if not any(m.role == "user" for m in messages):
        raise ConfigError(f"{label} renders no user message")
    return messages


def template_source(name: str, profile: str | PromptProfile) -> tuple[str, str]:
    """Return (qualified template name, source) for a template, with profile fallback."""
    found = get_profile(profile)
    for folder in (found.templates, found.fallback):
        if folder is None:
            continue
        source = read_template("agentrt.workflows", f"{folder}/{name}")
        if source is not None:
            return f"{folder}/{name}", source
    raise ConfigError(f"no prompt template {name!r} in profile {found.name!r}")


def render(name: str, profile: str | PromptProfile = "full", **variables: object) -> RenderedPrompt:
    """Render a template into chat messages.

    Args:
        name: template name without extension, e.g. "fast_answer".
        profile: a registered profile or its name (`agentrt.workflows.profiles`).
        **variables: template variables; all referenced ones are required.

    Returns:
        The rendered messages with the template's name and content hash.

    Raises:
        ConfigError: unknown profile or template, or a variable the template needs is missing.

    Example:
        >>> render("fast_answer", "full", problem="What is 2+2?").template
        'full/fast_answer'
    """
    qualified, source = template_source(name, profile)
    text = render_source(source, variables, f"prompt {qualified}")
    return RenderedPrompt(messages=split_messages(text, f"prompt {qualified}"),
                          template=qualified, template_hash=source_hash(source))
