"""`agentrt ui`: the web UI alone, on a trace store, with no backend and no model loaded.

It opens the store named by the settings (`--database-url`, `AGENTRT_DATABASE_URL`, or the
default SQLite file under the home), reads evaluation runs under `<home>/eval_runs` and iterate
runs under the given folders, and serves `/ui` behind the `AGENTRT_SERVER_API_KEYS` keys, as
`agentrt serve` does. This module knows uvicorn and settings; the pages are `agentrt.server.ui`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrt.server.app import load_server_config
from agentrt.server.ui import UISources, create_ui_app, default_iterate_dirs
from agentrt.store import TraceStore

__all__ = ["serve_ui"]


def serve_ui(settings: Any, *, host: str = "127.0.0.1", port: int = 8080,
             iterate_dirs: list[Path] | None = None, log_level: str = "info") -> None:
    """Serve the UI until interrupted.

    Raises:
        ConfigError: invalid server config. StoreError: the store cannot be opened.
    """
    import uvicorn  # heavy: uvicorn

    config = load_server_config()
    store = TraceStore.from_settings(settings)
    dirs = [Path(d).expanduser() for d in iterate_dirs] if iterate_dirs else \
        default_iterate_dirs(settings.home)
    app = create_ui_app(UISources(store, settings.home, dirs), config, close_store=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
