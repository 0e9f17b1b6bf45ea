"""Chat backends: one protocol, engines loaded lazily by name."""

from agentrt.llm.base import BACKENDS, ChatBackend, load_backend

__all__ = ["BACKENDS", "ChatBackend", "load_backend"]
