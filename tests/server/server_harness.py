"""Real servers for the server tests: uvicorn subprocesses on free loopback ports.

`launch()` starts one (the scripted fake app by default, or any command such as
`agentrt serve`) and waits for /health; `stop()` ends it. Each server gets its own agentrt home
and SQLite trace store under a temp dir, so tests can read the traces it wrote.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KEY = "sk-agentrt-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    home: Path
    log: Path
    key: str | None = KEY
    env: dict[str, str] = field(default_factory=dict)

    @property
    def db_url(self) -> str:
        return self.env.get("AGENTRT_DATABASE_URL") or f"sqlite:///{self.home / 'agentrt.db'}"

    def client(self, **kw):
        from openai import OpenAI

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 60)
        kw.setdefault("api_key", self.key or "unused")
        return OpenAI(base_url=f"{self.url}/v1", **kw)

    def aclient(self, **kw):
        from openai import AsyncOpenAI

        kw.setdefault("max_retries", 0)
        kw.setdefault("timeout", 60)
        kw.setdefault("api_key", self.key or "unused")
        return AsyncOpenAI(base_url=f"{self.url}/v1", **kw)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def post(self, path: str, **kw) -> httpx.Response:
        headers = {**self.headers(), **kw.pop("headers", {})}
        return httpx.post(f"{self.url}{path}", headers=headers, timeout=kw.pop("timeout", 60), **kw)

    def store(self):
        from agentrt.store import TraceStore

        return TraceStore(self.db_url)

    def children(self) -> list[int]:
        import psutil

        try:
            return [p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            return []


def launch(tmp: Path, *, env: dict[str, str] | None = None, cmd: list[str] | None = None,
           key: str | None = KEY, ready_s: float = 120.0) -> Server:
    """Start a server and wait until /health answers."""
    port = free_port()
    home = tmp / "home"
    home.mkdir(parents=True, exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTRT_")}
    full_env.update({"AGENTRT_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    if key:
        full_env["AGENTRT_SERVER_API_KEYS"] = key
    full_env.update(env or {})
    if cmd is None:
        cmd = [sys.executable, "-m", "uvicorn", "--factory", "fake_server_app:make_app",
               "--app-dir", str(HERE), "--log-level", "warning"]
    cmd = [*cmd, "--host", "127.0.0.1", "--port", str(port)]
    log = tmp / "server.log"
    proc = subprocess.Popen(cmd, env=full_env, cwd=REPO, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, home, log, key, full_env)
    deadline = time.monotonic() + ready_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop(server)
    raise RuntimeError(f"server did not start in {ready_s} s:\n{log.read_text()}")


def stop(server: Server) -> None:
    if server.proc.poll() is None:
        os.killpg(server.proc.pid, signal.SIGTERM)
        try:
            server.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.proc.pid, signal.SIGKILL)
            server.proc.wait()
