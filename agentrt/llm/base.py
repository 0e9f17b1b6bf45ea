"""The chat backend protocol every engine implements, and the registry that loads them by name.

A backend turns `ChatRequest`s into `ChatResponse`s with real token usage. It knows nothing about
workflows, traces or prompts. Engines are imported lazily so `import agentrt` stays light.

A caller that may give up on a call (a client went away, a solve was cancelled) makes it inside
`cancel_on(event)` (`agentrt.core.cancel`, re-exported here). An engine that can stop a call
part-way reads `current_cancel()` when the call starts and then raises `CancelledError` soon
after the event is set (the hf engine ends the request's rows at their next token); other
engines finish the call as usual. A stream is
cancelled by closing its iterator.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from agentrt.core.cancel import cancel_on, current_cancel
from agentrt.core.errors import ConfigError
from agentrt.core.types import ChatRequest, ChatResponse

__all__ = ["ChatBackend", "BACKENDS", "VERSIONED_ENGINES", "cancel_on", "current_cancel",
           "load_backend", "stream_by_chat", "is_version_ref", "PROMOTED"]


@runtime_checkable
class ChatBackend(Protocol):
    """One chat engine.

    Attributes:
        name: registry name of the engine ("hf", "openai", ...).
        model_id: the model it serves, as clients should name it.
        supports_json_schema: True when `json_schema` is enforced while decoding.
    """

    name: str
    model_id: str
    supports_json_schema: bool

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Run one request (its `params.n` choices)."""
        ...

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Run many requests, batched where the engine can; results in input order."""
        ...

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """Yield text pieces of one greedy/sampled choice as they are generated (n must be 1).

        An engine may also return the finished `ChatResponse` (finish reason, measured usage)
        as the iterator's return value (`StopIteration.value`) when it is read to the end;
        consumers that need them read it, others can ignore it.
        """
        ...

    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text` under this backend's tokenizer (best effort for remote)."""
        ...

    def close(self) -> None:
        """Release engine resources."""
        ...


def stream_by_chat(backend: ChatBackend, request: ChatRequest) -> Iterator[str]:
    """Fallback `stream` for engines without token streaming: one piece with the whole text."""
    response = backend.chat(request)
    yield response.text
    return response


# name -> "module:attribute"; adding a backend is one new file plus one line here.
BACKENDS: dict[str, str] = {
    "fake": "agentrt.llm.fake:FakeBackend",
    "hf": "agentrt.llm.hf:HFBackend",
    "openai": "agentrt.llm.openai_compat:OpenAIBackend",
    "vllm": "agentrt.llm.vllm_backend:VLLMBackend",
}
# Engines that load a model directory, so a registered model version can be served by them.
VERSIONED_ENGINES = ("hf", "vllm")
VERSIONED_BACKEND = "agentrt.llm.versions:VersionedBackend"
# Model version references: the promoted pointer, a version number, a version id.
PROMOTED = "promoted"
_NUMBER = re.compile(r"^v(\d{1,9})$")
_ID = re.compile(r"^mv-[0-9a-f]{4,29}$")


def is_version_ref(name: str) -> bool:
    """True for `promoted`, `v<N>` and `mv-<hex>` (an existing local directory wins)."""
    text = (name or "").strip()
    if not (text == PROMOTED or _NUMBER.match(text) or _ID.match(text)):
        return False
    return not Path(text).is_dir()


def load_backend(name: str, model: str, **options: Any) -> ChatBackend:
    """Build a backend by registry name.

    Args:
        name: one of `BACKENDS`.
        model: model name, local path or hub id (meaning depends on the engine); for the hf and
            vllm engines also a registered model version (`promoted`, `v3`, `mv-...`, see
            `agentrt.llm.versions`), read from the `database_url` option's registry.
        **options: engine options (base_url, api_key, device, home, ...); unknown ones are ignored
            by engines that do not use them.

    Raises:
        ConfigError: unknown backend name.
        BackendUnavailableError / ModelNotFoundError: the engine or model cannot be loaded.
    """
    target = BACKENDS.get(name)
    if target is None:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(sorted(BACKENDS))}")

    if name in VERSIONED_ENGINES and is_version_ref(model):  # `promoted`, `v3`: the model registry
        target, options = VERSIONED_BACKEND, {**options, "engine": name}
    module_name, attr = target.split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    return cls.from_options(model=model, **options)
