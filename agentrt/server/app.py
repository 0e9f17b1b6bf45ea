"""The FastAPI app: routes, wired to the service, behind the guard middleware.

    GET  /health                 liveness (no key needed; HEAD: 200, no body)
    GET  /metrics                Prometheus metrics (behind the key when keys are set)
    GET  /v1/models              the solver models and the backend's own model (HEAD: no body)
    GET  /ui/...                 the web UI (agentrt.server.ui; behind the key too)
    GET  /v1/models/{model}      one of them, or 404 (HEAD: no body)
    POST /v1/chat/completions    chat (solver or passthrough), JSON or SSE
    POST /v1/completions         legacy text completions, JSON or SSE

This module imports FastAPI; `agentrt.server` itself loads it only when an app is built.
Routes are thin: parse (FastAPI + the wire models), build a job, hand it to `Service.respond`.
`create_app` takes a ready runtime; `create_app_from_env` builds one from `AGENTRT_*` settings
and `AGENTRT_SERVER_*` config (what each uvicorn worker calls in factory mode).

    >>> from agentrt.runtime import Runtime
    >>> from agentrt.server import ServerConfig, create_app
    >>> app = create_app(Runtime(), ServerConfig())  # doctest: +SKIP
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000)
"""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from pydantic import ValidationError

from agentrt import __version__
from agentrt.core.config import load_settings
from agentrt.core.display import escape_logs
from agentrt.core.errors import ConfigError, first_problem
from agentrt.runtime import Runtime
from agentrt.server.chat import ChatFormat, build_chat_job
from agentrt.server.completions import TextFormat, build_completion_job
from agentrt.server.config import ServerConfig
from agentrt.server.errors import install_handlers
from agentrt.server.limits import GuardMiddleware
from agentrt.server.metrics import MetricsMiddleware, metrics_response
from agentrt.server.params import Catalog
from agentrt.server.service import Service
from agentrt.server.ui import UISources, default_iterate_dirs, mount_ui
from agentrt.server.wire import ChatCompletionRequest, CompletionRequest

__all__ = ["create_app", "create_app_from_env", "load_server_config"]

_CHAT, _TEXT = ChatFormat(), TextFormat()


def load_server_config(**overrides: Any) -> ServerConfig:
    """`ServerConfig` from `AGENTRT_SERVER_*`, with overrides; ConfigError when invalid."""
    try:
        return ServerConfig(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        raise ConfigError(f"invalid server setting {first_problem(e, 'server config')}") \
            from None


def create_app(runtime: Any, config: ServerConfig | None = None, *,
               close_runtime: bool = False) -> Any:
    """Build the OpenAI-compatible app around `runtime`.

    The backend and store are opened here (a model loads once, before the first request).

    Args:
        runtime: an `agentrt.runtime.Runtime`.
        config: server limits and keys; `AGENTRT_SERVER_*` when omitted.
        close_runtime: close the runtime when the app shuts down (when the app built it).

    Returns:
        A FastAPI application.
    """
    config = config or load_server_config()
    service = Service(runtime, config)
    backend = service.runtime.backend
    catalog = Catalog(backend.model_id, backend.name, int(time.time()))
    max_problem = runtime.settings.limits.max_problem_chars

    @asynccontextmanager
    async def lifespan(_app: Any):
        escape_logs()  # the server's logging is set up by now: request paths, errors, tracebacks
        service.drain.hook_signals()  # stop new work and drain in flight from the signal on
        yield
        await service.close()
        if close_runtime:
            runtime.close()

    app = FastAPI(title="agentrt", version=__version__, lifespan=lifespan,
                  summary="OpenAI-compatible chat: the agentrt solver and its backend model.")
    install_handlers(app, retry_after_s=config.retry_after_s)
    app.add_middleware(GuardMiddleware, config=config)
    home = runtime.settings.home  # the UI, inside the guard: behind the same keys
    mount_ui(app, UISources(runtime.store, home, default_iterate_dirs(home)), config)
    if config.cors_origins:  # outside the guard: a browser's preflight carries no key
        app.add_middleware(
            CORSMiddleware, allow_origins=config.cors_origins, allow_credentials=False,
            allow_methods=["GET", "POST", "HEAD", "OPTIONS"],
            allow_headers=["*"],  # the SDKs send their own (x-stainless-*), keys included
            expose_headers=["X-Request-Id", "X-Agentrt-Trace-Id", "Retry-After", "x-should-retry"],
            max_age=600)
    app.add_middleware(MetricsMiddleware, router=app.router)  # outermost: refusals count too
    app.state.service = service

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health(request: Request) -> Any:
        if request.method == "HEAD":
            from starlette.responses import Response  # heavy: starlette

            return Response(status_code=200)
        out = {"status": "ok", "model": catalog.backend_model, "backend": catalog.backend_name,
               "in_flight": service.limiter.in_flight, "max_concurrency": config.max_concurrency}
        stats = getattr(backend, "batch_stats", None)  # backends that batch concurrent calls
        if stats is not None:
            out["batching"] = {"batches": stats.batches, "items": stats.items,
                               "max_size": stats.max_size, "joined": stats.joined}
        prefixes = getattr(backend, "prefix_cache", None)  # the hf backend's prefix cache
        if prefixes is not None:
            out["prefix_cache"] = {"lookups": prefixes.stats.lookups, "hits": prefixes.stats.hits,
                                   "tokens_reused": prefixes.stats.tokens_reused,
                                   "bytes": prefixes.bytes}
        return out

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Any:
        return metrics_response()

    @app.api_route("/v1/models", methods=["GET", "HEAD"])
    async def list_models(request: Request) -> Any:
        return _get_or_head(request, {"object": "list",
                                      "data": [catalog.entry(m) for m in catalog.ids()]})

    @app.api_route("/v1/models/{model:path}", methods=["GET", "HEAD"])
    async def get_model(model: str, request: Request) -> Any:
        return _get_or_head(request, catalog.entry(model))

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Any:
        job = build_chat_job(body, catalog, config, max_problem)
        return await service.respond(job, _CHAT, request)

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request) -> Any:
        job = build_completion_job(body, catalog, config, max_problem)
        return await service.respond(job, _TEXT, request)

    return app


def _get_or_head(request: Request, body: dict[str, Any]) -> Any:
    """`body` as JSON; for HEAD the same status and headers without the body."""
    from starlette.responses import JSONResponse  # heavy: starlette

    response = JSONResponse(body)
    if request.method == "HEAD":
        response.body = b""  # Content-Length stays the GET body's, as HTTP asks of HEAD
    return response


def create_app_from_env() -> Any:
    """The app for one uvicorn worker: runtime from `AGENTRT_*`, config from `AGENTRT_SERVER_*`."""
    return create_app(Runtime(load_settings()), load_server_config(), close_runtime=True)
