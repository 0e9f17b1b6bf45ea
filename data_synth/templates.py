"""Templates of data synthesis as package data: `data_synth/prompts/**/*.jinja`.

Two kinds, loaded and rendered by the runtime's own template functions
(`agentrt.workflows.prompts`), so both follow one set of conventions: chat prompts, split into
messages by `### system` / `### user` / `### assistant` header lines (the problem writer), and
plain-text templates with no headers (the gold replies a teacher trace is scripted from, under
`gold/`). Both render with `StrictUndefined`, so a missing variable is an error, and every chat
prompt carries its template name and a short content hash, like the runtime's prompts. This
module knows nothing about backends, traces or datasets.
"""

from __future__ import annotations

from agentrt.core.errors import ConfigError
from agentrt.workflows.prompts import (
    RenderedPrompt,
    read_template,
    render_source,
    source_hash,
    split_messages,
)

__all__ = ["render_prompt", "render_text", "template_hash"]


def _source(name: str) -> str:
    source = read_template("agentrt.data_synth", name)
    if source is None:
        raise ConfigError(f"no data synthesis template {name!r}")
    return source


def template_hash(name: str) -> str:
    """Short content hash of a template's source (what traces and dataset rows record)."""
    return source_hash(_source(name))


def _render(name: str, variables: dict[str, object]) -> str:
    return render_source(_source(name), variables, f"template data_synth/{name}")


def render_text(name: str, **variables: object) -> str:
    """Render a plain-text template (no message headers), stripped of surrounding blank space."""
    return _render(name, variables).strip()


def render_prompt(name: str, **variables: object) -> RenderedPrompt:
    """Render a chat template into messages, named `data_synth/<name>` with its content hash.

    Raises:
        ConfigError: unknown template, a missing variable, or no user message.
    """
    messages = split_messages(_render(name, variables), f"template data_synth/{name}")
    return RenderedPrompt(messages=messages, template=f"data_synth/{name}",
                          template_hash=template_hash(name))
