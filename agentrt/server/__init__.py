"""The OpenAI-compatible HTTP API: the agentrt solver and its backend model as chat models.

    $ agentrt serve --port 8000
    >>> from openai import OpenAI
    >>> client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")  # doctest: +SKIP
    >>> client.chat.completions.create(model="agentrt-fast",
    ...     messages=[{"role": "user", "content": "What is 17*23+5?"}])  # doctest: +SKIP

Layout: `app.py` (routes, `create_app`), `wire.py` (OpenAI request and response shapes),
`chat.py` / `completions.py` (requests as jobs, results as API objects), `params.py` (models
served, parameter support and limits), `jobs.py` (the blocking work: solves and backend calls),
`streaming.py` (threads to asyncio, SSE, deadlines, disconnects), `service.py` (one request end
to end), `limits.py` (keys, body size, concurrency), `idempotency.py`, `errors.py` (the one
mapping to OpenAI error bodies), `config.py` (`ServerConfig`). See docs/SERVER.md.

FastAPI loads only when an app is built; importing this package is cheap. Nothing else in
agentrt imports it.
"""

from __future__ import annotations

from typing import Any

from agentrt.server.config import ServerConfig

__all__ = ["ServerConfig", "create_app", "create_app_from_env"]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "create_app_from_env"):
        from agentrt.server import app  # lazy: FastAPI loads when an app is built

        return getattr(app, name)
    raise AttributeError(f"module 'agentrt.server' has no attribute {name!r}")
