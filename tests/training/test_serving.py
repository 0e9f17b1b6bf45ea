"""Serving registered versions: `--model promoted` follows the pointer without a restart.

Two tiny random Llamas answer the same prompt differently; the server (a real `agentrt serve`
uvicorn subprocess on the hf backend) is asked before and after the registry promotes the
other one, and must switch to it within its polling interval.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from agentrt.llm.base import load_backend
from agentrt.core.types import ChatRequest

SERVER_TESTS = Path(__file__).resolve().parents[1] / "server"
PROMPT = [{"role": "user", "content": "Name a color."}]

pytestmark = pytest.mark.slow


def _greedy(path: Path) -> str:
    backend = load_backend("hf", str(path), device="cpu")
    try:
        return backend.chat(ChatRequest.of(PROMPT[0]["content"], max_tokens=8)).text
    finally:
        backend.close()


def test_versioned_backend_swaps_between_requests(tmp_path, tiny_llama_dir, tiny_llama_b):
    from agentrt.store import TraceStore
    from agentrt.training.registry import ModelRegistry

    db_url = f"sqlite:///{tmp_path / 'r.db'}"
    store = TraceStore(db_url)
    registry = ModelRegistry(store)
    a = registry.register(tiny_llama_dir, base_model="tiny")
    b = registry.register(tiny_llama_b, base_model="tiny")
    registry.promote(a.id)
    want_a, want_b = _greedy(tiny_llama_dir), _greedy(tiny_llama_b)
    assert want_a != want_b
    backend = load_backend("hf", "promoted", device="cpu", database_url=db_url, poll_s=0.0)
    pinned = load_backend("hf", "v1", device="cpu", database_url=db_url, poll_s=0.0)
    try:
        assert backend.model_id == "tiny@promoted" and backend.version.id == a.id
        ask = ChatRequest.of(PROMPT[0]["content"], max_tokens=8)
        assert backend.chat(ask).text == want_a
        registry.promote(b.id)
        assert backend.chat(ask).text == want_b and backend.version.id == b.id
        assert pinned.chat(ask).text == want_a  # a pinned version never moves
        registry.rollback()
        assert backend.chat(ask).text == want_a
    finally:
        backend.close()
        pinned.close()
        store.close()


def test_server_switches_to_a_newly_promoted_version(tmp_path, tiny_llama_dir, tiny_llama_b):
    sys.path.insert(0, str(SERVER_TESTS))
    from server_harness import launch, stop

    from agentrt.store import TraceStore
    from agentrt.training.registry import ModelRegistry

    db_url = f"sqlite:///{tmp_path / 'serve.db'}"
    store = TraceStore(db_url)
    registry = ModelRegistry(store)
    a = registry.register(tiny_llama_dir, base_model="tiny")
    b = registry.register(tiny_llama_b, base_model="tiny")
    registry.promote(a.id)
    want_a, want_b = _greedy(tiny_llama_dir), _greedy(tiny_llama_b)
    cmd = [sys.executable, "-m", "agentrt.cli", "serve", "--backend", "hf", "--model",
           "promoted", "--log-level", "warning"]
    server = launch(tmp_path, cmd=cmd, env={"AGENTRT_DATABASE_URL": db_url,
                                            "AGENTRT_DEVICE": "cpu"})
    try:
        client = server.client(timeout=120)

        def ask() -> str:
            out = client.chat.completions.create(model="tiny@promoted", messages=PROMPT,
                                                 temperature=0, max_tokens=8)
            return out.choices[0].message.content

        assert ask() == want_a
        registry.promote(b.id, reason="test")
        deadline = time.monotonic() + 60
        seen = ask()
        while seen != want_b and time.monotonic() < deadline:
            time.sleep(0.5)
            seen = ask()
        assert seen == want_b  # the same server process, a new model
        assert server.proc.poll() is None
    finally:
        stop(server)
        store.close()
