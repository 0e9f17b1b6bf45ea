"""The OpenAI-compatible backend against a real local HTTP server (tests/llm/openai_server.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from agentrt.core.errors import BackendError, BackendRequestError, BackendUnavailableError, ConfigError, ModelNotFoundError
from agentrt.llm.base import ChatBackend, load_backend
from agentrt.llm.openai_compat import OpenAIBackend, request_to_params
from agentrt.core.types import ChatRequest, Message, SamplingParams

SERVER = Path(__file__).with_name("openai_server.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> str:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{root}/stats", timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"test server did not start: {proc.stdout.read().decode()[-2000:]}") from None
            time.sleep(0.1)
    yield root
    proc.terminate()
    proc.wait(timeout=10)


def backend(server: str, model: str = "fake", **kw) -> OpenAIBackend:
    kw.setdefault("api_key", "test-key")
    kw.setdefault("max_retries", 2)
    return OpenAIBackend(model, base_url=f"{server}/v1", **kw)


def stats(server: str) -> dict:
    return httpx.get(f"{server}/stats").json()


def test_chat_roundtrip_with_server_usage(server):
    b = backend(server)
    assert isinstance(b, ChatBackend) and b.name == "openai"
    out = b.chat(ChatRequest.of("What is 2+3?", system="Be brief."))
    assert out.text == "2 + 3 = 5" and out.model == "fake"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (7, 5)  # as the server counted
    assert b.estimated_usage == 0


def test_parameters_reach_the_server(server):
    b = backend(server)
    req = ChatRequest(
        messages=[Message(role="user", content="give json", name="alice")],
        params=SamplingParams(temperature=0.5, top_p=0.9, max_tokens=33, stop=["\n\n"], seed=4, n=2),
        json_schema={"title": "My Answer!", "type": "object", "properties": {"answer": {"type": "integer"}}},
    )
    out = b.chat(req)
    sent = stats(server)["last"]
    assert sent["messages"] == [{"role": "user", "content": "give json", "name": "alice"}]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["n"]) == (0.5, 0.9, 33, 2)
    assert sent["stop"] == ["\n\n"] and sent["seed"] == 4
    fmt = sent["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "My_Answer_" and fmt["json_schema"]["schema"] == req.json_schema
    assert [c.index for c in out.choices] == [0, 1] and out.text == '{"answer": 5}'


def test_request_translation_leaves_out_unset_fields():
    params = request_to_params(ChatRequest.of("hi"), "m")
    assert "stop" not in params and "seed" not in params and "response_format" not in params
    assert request_to_params(ChatRequest.of("hi"), "m", stream=True)["stream"] is True


def test_a_tool_message_is_sent_as_user_text():
    req = ChatRequest(messages=[Message(role="user", content="weather?"),
                                Message(role="assistant", content='[{"id": "call_1"}]'),
                                Message(role="tool", content="21C")])
    sent = request_to_params(req, "m")["messages"]
    assert sent[2] == {"role": "user", "content": "Tool result: 21C"}  # no tool_call_id to give
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]


@pytest.mark.parametrize("body", [
    {"message": "Your input is too long.", "code": "context_length_exceeded"},  # OpenAI
    {"message": "This model's maximum context length is 2048 tokens. However, you requested "
                "2100 tokens (100 in the messages, 2000 in the completion).", "code": None},  # vLLM
])
def test_an_upstream_context_overflow_keeps_its_reason(body):
    import openai  # heavy: openai

    b = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", api_key="k")
    response = httpx.Response(400, request=httpx.Request("POST", "http://127.0.0.1:9/v1/x"))
    err = b._map_error(openai.BadRequestError(body["message"], response=response, body=body))
    assert isinstance(err, BackendRequestError) and err.status == 400
    assert err.details["reason"] == "context_length_exceeded" and body["message"] in str(err)
    plain = b._map_error(openai.BadRequestError("bad", response=response, body={"message": "bad"}))
    assert "reason" not in plain.details


def test_missing_usage_is_estimated_and_counted(server):
    b = backend(server, "no-usage")
    out = b.chat(ChatRequest.of("hello there"))
    assert out.text == "echo: hello there"
    assert out.usage.completion_tokens == b.count_tokens("echo: hello there") > 0
    assert out.usage.prompt_tokens > 0 and b.estimated_usage == 1


def test_429_is_retried_then_succeeds(server):
    before = stats(server)["calls"].get("flaky-429", 0)
    out = backend(server, "flaky-429").chat(ChatRequest.of("hello"))
    assert out.text == "echo: hello"
    assert stats(server)["calls"]["flaky-429"] == before + 2


def test_500_is_retried_then_raised(server):
    before = stats(server)["calls"].get("broken", 0)
    with pytest.raises(BackendError, match="500: the engine crashed") as info:
        backend(server, "broken", max_retries=1).chat(ChatRequest.of("hello"))
    assert info.value.details["status"] == 500
    assert stats(server)["calls"]["broken"] == before + 2


def test_http_errors_map_onto_the_error_tree(server):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        backend(server, "no-such-model").chat(ChatRequest.of("hi"))
    with pytest.raises(BackendRequestError, match="Incorrect API key") as info:
        backend(server, api_key="wrong").chat(ChatRequest.of("hi"))
    assert info.value.status == 401
    with pytest.raises(BackendRequestError, match="at most 1000") as info:
        backend(server).chat(ChatRequest.of("hi", max_tokens=2000))
    assert info.value.status == 400


def test_unreachable_server_names_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    b = OpenAIBackend("fake", base_url=url, max_retries=0, timeout_s=5)
    with pytest.raises(BackendUnavailableError, match="127.0.0.1"):
        b.chat(ChatRequest.of("hi"))


def test_chat_batch_runs_concurrently_in_order(server):
    b = backend(server, concurrency=4)
    prompts = [f"item {i}" for i in range(10)]
    out = b.chat_batch([ChatRequest.of(p) for p in prompts])
    assert [r.text for r in out] == [f"echo: {p}" for p in prompts]
    assert b.chat_batch([]) == []
    b.close()


def drain(iterator) -> tuple[list, object]:
    pieces = []
    while True:
        try:
            pieces.append(next(iterator))
        except StopIteration as stop:
            return pieces, stop.value


def test_stream_yields_pieces_and_returns_the_response(server):
    pieces, response = drain(backend(server).stream(ChatRequest.of("one two three")))
    assert pieces == ["echo:", " one", " two", " three"]
    assert response.text == "echo: one two three" and response.choices[0].finish_reason == "stop"
    assert (response.usage.prompt_tokens, response.usage.completion_tokens) == (4, 4)  # server's count
    assert stats(server)["last"]["stream_options"] == {"include_usage": True}
    with pytest.raises(BackendRequestError):
        backend(server).stream(ChatRequest.of("hi", n=2))


def test_options_and_registry(server, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(ConfigError, match="api_key"):
        OpenAIBackend("gpt-4o-mini")
    with pytest.raises(ConfigError):
        OpenAIBackend("fake", base_url=f"{server}/v1", concurrency=0)
    b = load_backend("openai", "fake", base_url=f"{server}/v1", api_key="test-key", device="ignored")
    assert b.model_id == "fake" and b.base_url == f"{server}/v1"
