"""`agentrt serve`: run the app on uvicorn, in one process or several workers.

With one worker the runtime is built here from the settings (flags over environment over the
config file) and handed to the app. With several, uvicorn starts each worker from the import
string `agentrt.server.app:create_app_from_env` (factory mode), so every worker builds its own
runtime, backend and store connection from the environment; the flags are passed on to the
workers as `AGENTRT_*` variables. Several workers want a database they can share: PostgreSQL,
or the default SQLite file (WAL) on one machine.
This module knows uvicorn and settings; the app itself is `agentrt.server.app`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agentrt.core.config import load_settings
from agentrt.runtime import Runtime
from agentrt.server.app import create_app, load_server_config

__all__ = ["serve"]

_ENV = {"backend": "AGENTRT_BACKEND", "model": "AGENTRT_MODEL", "base_url": "AGENTRT_BASE_URL",
        "database_url": "AGENTRT_DATABASE_URL"}


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          config_file: Path | None = None, log_level: str = "info", **overrides: Any) -> None:
    """Serve the OpenAI-compatible API until interrupted.

    Args:
        host: address to bind (loopback by default; expose it deliberately).
        port: TCP port.
        workers: worker processes; each loads its own backend (memory grows with it).
        config_file: TOML settings file (else `$AGENTRT_CONFIG` / `./agentrt.toml`).
        log_level: uvicorn's log level.
        **overrides: settings fields (backend, model, base_url, database_url); None = unset.

    Raises:
        ConfigError: invalid settings or server config (checked before anything starts).
    """
    import uvicorn  # heavy: uvicorn

    settings = load_settings(config_file, **overrides)  # fail fast, in the parent
    config = load_server_config()
    if workers <= 1:
        app = create_app(Runtime(settings), config, close_runtime=True)
        uvicorn.run(app, host=host, port=port, log_level=log_level,
                    timeout_graceful_shutdown=config.shutdown_grace_s)
        return
    if config_file is not None:
        os.environ["AGENTRT_CONFIG"] = str(Path(config_file).resolve())
    for name, var in _ENV.items():
        if overrides.get(name) is not None:
            os.environ[var] = str(overrides[name])
    uvicorn.run("agentrt.server.app:create_app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level=log_level,
                timeout_graceful_shutdown=config.shutdown_grace_s)
