"""The web UI: traces, a trace's workflow graph (live while it runs), evaluation runs, models.

    agentrt serve          # the API, with the UI at http://127.0.0.1:8000/ui
    agentrt ui             # the UI alone, on a trace store, without loading any model

`mount_ui(app, sources, config)` adds the `/ui` routes to an app that already has the API
guard (so the UI is behind the same API keys; `auth.py` lets a browser log in with a key);
`create_ui_app` builds an app that serves only the UI and `/health`. Layout: `sources.py`
(what is read: store, eval run folders, iterate run folders, registry), `graph.py` and
`plots.py` (geometry of the workflow graph and the plots), `render.py` (the autoescaped Jinja
environment), `pages.py` (routes), `live.py` (server-sent events), `auth.py` (key cookie);
`templates/` and `static/` are package data (no build step, no network). docs/UI.md
describes the pages. This package reads and shows; it never changes a trace or a run.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from agentrt.server.config import ServerConfig
from agentrt.server.limits import GuardMiddleware
from agentrt.server.ui.auth import UIKeyCookie
from agentrt.server.ui.pages import ui_router
from agentrt.server.ui.sources import UISources, default_iterate_dirs

__all__ = ["UISources", "mount_ui", "create_ui_app", "default_iterate_dirs"]


def mount_ui(app: Any, sources: UISources, config: ServerConfig) -> None:
    """Add the `/ui` pages to `app`; call it after the guard middleware is added, so the key
    cookie is translated before the guard checks it."""
    app.include_router(ui_router(sources))
    app.add_middleware(UIKeyCookie, keys=config.api_keys)


def create_ui_app(sources: UISources, config: ServerConfig, *, close_store: bool = False) -> Any:
    """An app with only the UI (and `/health`), behind the API keys of `config`.

    Example:
        >>> from agentrt.store import TraceStore
        >>> app = create_ui_app(UISources(TraceStore("sqlite:///t.db"), Path(".")),
        ...                     ServerConfig())  # doctest: +SKIP
    """
    @asynccontextmanager
    async def lifespan(_app: Any):
        yield
        if close_store:
            sources.store.close()

    app = FastAPI(title="agentrt UI", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(GuardMiddleware, config=config)
    mount_ui(app, sources, config)

    @app.api_route("/health", methods=["GET", "HEAD"])
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    async def root() -> Any:
        return RedirectResponse("/ui/traces", status_code=303)

    return app
