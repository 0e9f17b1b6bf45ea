"""Pieces of the server on their own: wire validation, stop filtering, step text, config,
idempotency claims, error mapping. No HTTP here; the conformance tests cover the whole."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from agentrt.core.errors import (BackendRequestError, BackendUnavailableError, CancelledError,
                            InvalidInputError, StoreError)
from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError, to_api_error, validation_error
from agentrt.server.idempotency import IdempotencyStore
from agentrt.server.jobs import StopFilter, TraceIdStore, cut_at_stop, describe_step, _preset
from agentrt.server.params import Catalog
from agentrt.server.wire import ChatCompletionRequest, CompletionRequest, ResponseFormat


def chat(**kw):
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "hi"}], **kw})


def param_of(**kw) -> str | None:
    with pytest.raises(ValidationError) as e:
        chat(**kw)
    return validation_error(e.value.errors()).param


def test_wire_accepts_unknown_fields_and_is_strict_on_types():
    req = chat(temperature=1, some_future_field={"x": 1}, stop="END")
    assert req.temperature == 1.0 and req.stop_list == ["END"] and req.token_limit is None
    assert param_of(temperature="1") == "temperature"
    assert param_of(n=True) == "n"
    assert param_of(stop=[1]) == "stop"
    assert param_of(messages=[{"role": "user", "content": [{"type": "image_url"}]}]) == \
        "messages[0].content"
    assert param_of(stream_options={"include_usage": True}) is None  # needs stream: whole body


def test_wire_token_limit_prefers_max_completion_tokens():
    assert chat(max_tokens=5, max_completion_tokens=7).token_limit == 7
    assert chat(max_tokens=5).token_limit == 5


def test_message_text_and_roles():
    req = chat(messages=[{"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "text", "text": "b"}]},
                         {"role": "assistant", "tool_calls": [{"id": "1"}]}])
    assert req.messages[0].text == "a\nb" and '"id": "1"' in req.messages[1].text


def test_response_format_schema():
    assert ResponseFormat(type="json_object").schema_for_backend() == {"type": "object"}
    fmt = ResponseFormat.model_validate({"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "array"}}})
    assert fmt.schema_for_backend() == {"type": "array"}
    assert ResponseFormat(type="text").schema_for_backend() is None


def test_completion_request_prompt_kinds():
    assert CompletionRequest.model_validate({"model": "m", "prompt": [1, 2]}).prompt == [1, 2]
    with pytest.raises(ValidationError):
        CompletionRequest.model_validate({"model": "m", "prompt": []})


@pytest.mark.parametrize("pieces", [["alpha be", "ta gam", "ma"], list("alpha beta gamma")])
def test_stop_filter_holds_back_partial_stops(pieces):
    f, out, hit = StopFilter(["beta", "zz"]), [], False
    for p in pieces:
        text, hit = f.feed(p)
        out.append(text)
        if hit:
            break
    assert hit and "".join(out) == "alpha "


def test_stop_filter_flushes_the_tail():
    f = StopFilter(["xyz"])
    assert f.feed("abcxy") == ("abc", False)
    assert f.flush() == "xy"
    assert cut_at_stop("one two", ["two", "one"]) == ("", True)


def test_describe_step_kinds():
    step = SimpleNamespace(kind="llm", name="fast_answer", node=None, status="ok", error=None,
                           outputs={"text": "x" * 50})
    assert describe_step(step, 10) == f"[fast_answer] {'x' * 10} …\n"
    tool = SimpleNamespace(kind="tool", name="python", node="n1", status="ok", error=None,
                           outputs={"stdout": "4\n", "stderr": "", "exit_code": 0})
    assert describe_step(tool, 100) == '[tool n1/python] {"stdout": "4\\n", "exit_code": 0}\n'
    bad = SimpleNamespace(kind="tool", name="python", node=None, status="failed",
                          error="tool_timeout: slow", outputs={})
    assert "failed: tool_timeout" in describe_step(bad, 100)


def test_trace_id_store_uses_the_preset_once():
    calls = []
    store = TraceIdStore(SimpleNamespace(start_trace=lambda **kw: calls.append(kw) or "auto",
                                         url="u"))
    _preset.trace_id = "abc"
    store.start_trace(problem="p")
    store.start_trace(problem="q")
    assert calls[0]["trace_id"] == "abc" and "trace_id" not in calls[1] and store.url == "u"


def test_server_config_from_env(monkeypatch):
    monkeypatch.setenv("AGENTRT_SERVER_API_KEYS", "key-one-123, key-two-456")
    monkeypatch.setenv("AGENTRT_SERVER_MAX_CONCURRENCY", "3")
    cfg = ServerConfig()
    assert cfg.api_keys == ["key-one-123", "key-two-456"] and cfg.max_concurrency == 3
    monkeypatch.setenv("AGENTRT_SERVER_API_KEYS", "short")
    with pytest.raises(ValidationError):
        ServerConfig()


def test_catalog():
    cat = Catalog("smollm2-135m", "hf", 1)
    assert cat.mode("agentrt-slow") == "slow" and cat.mode("smollm2-135m") is None
    with pytest.raises(APIError) as e:
        cat.mode("gpt-4")
    assert e.value.status == 404 and e.value.code == "model_not_found"
    assert cat.entry("smollm2-135m")["owned_by"] == "agentrt:hf"


@pytest.mark.parametrize("exc,status", [
    (InvalidInputError("x"), 400), (BackendRequestError("x", status=400), 400),
    (BackendRequestError("x", status=503), 502), (BackendUnavailableError("x"), 503),
    (StoreError("x"), 503), (CancelledError("x"), 499), (RuntimeError("boom"), 500),
])
def test_error_mapping(exc, status):
    err = to_api_error(exc)
    assert err.status == status
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}
    if status == 500:
        assert "boom" not in err.message  # internals are not shown to clients


@pytest.fixture
def idem(tmp_path):
    from agentrt.store import TraceStore

    store = TraceStore(f"sqlite:///{tmp_path / 't.db'}")
    yield lambda **kw: IdempotencyStore(store.engine, **{"ttl_s": 60, "stale_s": 60, **kw})
    store.close()


def test_idempotency_claims(idem):
    s = idem()
    assert s.begin("k", "f1").state == "new"
    assert s.begin("k", "f1").state == "running"
    assert s.begin("k", "f2").state == "mismatch"
    s.complete("k", {"id": "x", "n": [1]}, ["t1"])
    claim = s.begin("k", "f1")
    assert (claim.state, claim.body, claim.trace_ids) == ("done", {"id": "x", "n": [1]}, ["t1"])
    assert s.begin("j", "f").state == "new"
    s.release("j")
    assert s.begin("j", "f").state == "new"


def test_idempotency_stale_and_expired_claims_are_taken_over(idem):
    stale = idem(stale_s=0.05)
    assert stale.begin("k", "f").state == "new"
    time.sleep(0.1)
    assert stale.begin("k", "f").state == "new"  # the first holder is presumed dead
    short = idem(ttl_s=0.05)
    short.begin("d", "f")
    short.complete("d", {"a": 1}, [])
    time.sleep(0.1)
    assert short.begin("d", "other").state == "new"  # the old result expired


def test_idempotency_one_winner_among_threads(idem):
    s = idem()
    states, barrier = [], threading.Barrier(8)

    def claim():
        barrier.wait()
        states.append(s.begin("race", "f").state)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(states) == ["new"] + ["running"] * 7
