"""Token lengths of dataset rows, measured with the trained model's own tokenizer.

Rows are rendered exactly as the hf backend renders a request: the tokenizer's chat template as
text (`add_generation_prompt` for prompts), then tokenized without adding special tokens. A
chat template that cannot render OpenAI tool calls (many small models' cannot) is given the
calls as JSON text instead, and the counter remembers that it approximated. The tokenizer comes
from `agentrt.llm.models.resolve_model` (an embedded name is pulled on first use, a directory
is used as is). transformers is imported only here, on first use.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.llm.models import resolve_model

__all__ = ["TokenCounter"]


@lru_cache(maxsize=4)
def _load(path: str) -> Any:
    """A tokenizer, loaded once per process and path."""
    from transformers import AutoTokenizer  # heavy: transformers

    return AutoTokenizer.from_pretrained(path)


class TokenCounter:
    """Counts tokens of chat rows and plain text.

    Args:
        model: an embedded model name, a model directory or a hub id.
        home: the agentrt home holding the model cache.

    Raises:
        ModelNotFoundError: the model cannot be resolved.
        ConfigError: its tokenizer cannot be loaded.
    """

    def __init__(self, model: str, home: str | Path | None = None) -> None:
        path = resolve_model(model, home, progress=False)
        try:
            self.tokenizer = _load(path)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot load the tokenizer of {model!r}: {e}") from None
        self.model = model
        self.approximated_tool_calls = False

    def ids(self, messages: list[dict[str, Any]], *, generation_prompt: bool = False,
            tools: list[dict[str, Any]] | None = None) -> list[int]:
        """Token ids of `messages` rendered by the chat template, as the hf backend does."""
        try:
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=generation_prompt,
                **({"tools": tools} if tools else {}))
        except Exception:  # the template cannot render tool calls: count them as JSON text
            if not any(m.get("tool_calls") for m in messages):
                raise
            self.approximated_tool_calls = True
            flat = [{"role": m["role"], "content": m.get("content") or json.dumps(
                m.get("tool_calls"), ensure_ascii=False)} for m in messages]
            text = self.tokenizer.apply_chat_template(
                flat, tokenize=False, add_generation_prompt=generation_prompt)
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def chat(self, messages: list[dict[str, Any]], *,
             tools: list[dict[str, Any]] | None = None) -> int:
        """Tokens of a whole conversation."""
        return len(self.ids(messages, tools=tools))

    def text(self, text: str) -> int:
        """Tokens of plain text."""
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)
