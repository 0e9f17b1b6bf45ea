"""Pieces of the server on their own: wire validation, requests as jobs, stop filtering, step
text, config, idempotency claims, error mapping. No HTTP here; the conformance tests cover the
whole."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from agentrt.core.errors import (BackendRequestError, BackendUnavailableError, CancelledError,
                                 ConfigError, InvalidInputError, ModelNotFoundError, StoreError)
from agentrt.core.types import ChatRequest
from agentrt.llm.hf import HFBackend
from agentrt.llm.openai_compat import request_to_params
from agentrt.server.chat import build_chat_job
from agentrt.server.completions import build_completion_job
from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError, to_api_error, validation_error
from agentrt.server.idempotency import IdempotencyStore
from agentrt.server.jobs import (StopFilter, TraceIdStore, choice_seed, cut_at_stop,
                                 describe_step, _preset)
from agentrt.server.params import Catalog
from agentrt.server.wire import ChatCompletionRequest, CompletionRequest, ResponseFormat

CATALOG = Catalog("m", "fake", 1)


def chat(**kw):
    return ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "user", "content": "hi"}], **kw})


def error_of(**kw) -> APIError:
    with pytest.raises(ValidationError) as e:
        chat(**kw)
    return validation_error(e.value.errors())


def param_of(**kw) -> str | None:
    return error_of(**kw).param


def test_wire_accepts_unknown_fields_and_is_strict_on_types():
    req = chat(temperature=1, some_future_field={"x": 1}, stop="END")
    assert req.temperature == 1.0 and req.stop_list == ["END"] and req.token_limit is None
    assert param_of(temperature="1") == "temperature"
    assert param_of(n=True) == "n"
    assert param_of(stop=[1]) == "stop"
    assert param_of(messages=[{"role": "user", "content": [{"type": "image_url"}]}]) == \
        "messages[0].content"


@pytest.mark.parametrize("kw,param", [
    (dict(stream_options={"include_usage": True}), "stream_options"),  # needs stream: true
    (dict(stream=False, stream_options={"include_usage": True}), "stream_options"),
    (dict(top_logprobs=2), "top_logprobs"),  # needs logprobs: true
    (dict(logprobs=False, top_logprobs=2), "top_logprobs"),
])
def test_errors_between_fields_name_the_field(kw, param):
    err = error_of(**kw)
    assert err.param == param and f"'{param}'" in err.message and "None" not in err.message
    assert chat(stream=True, stream_options={"include_usage": True}).include_usage
    assert chat(logprobs=True, top_logprobs=2).top_logprobs == 2


def test_body_level_errors_name_no_parameter():
    empty = validation_error([{"type": "missing", "loc": ("body",), "msg": "Field required",
                               "input": None}])
    assert empty.param is None and empty.message == "The request body is empty; send a JSON object."
    # FastAPI passes the raw bytes on when the Content-Type is not JSON
    form = validation_error([{"type": "model_attributes_type", "loc": ("body",),
                              "msg": "Input should be a valid dictionary or object",
                              "input": b'{"model": "m"}'}])
    assert form.message.startswith("Content-Type must be application/json")
    assert (form.status, form.param, form.code) == (400, None, "invalid_content_type")
    whole = validation_error([{"type": "value_error", "loc": (), "msg": "Value error, odd"}])
    assert whole.message == "Invalid value: odd." and whole.param is None


@pytest.mark.parametrize("kind", ["image_url", "input_audio", "file"])
def test_media_content_parts_are_unsupported_values(kind):
    err = error_of(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": kind, kind: {}}]}])
    assert (err.status, err.param, err.code) == (400, "messages[0].content", "unsupported_value")
    assert repr(kind) in err.message
    assert error_of(messages=[{"role": "user", "content": [{"type": "x"}]}]).code == \
        "invalid_value"  # not a part type of the API at all


def test_seed_is_int64_and_choice_seeds_wrap_around():
    assert chat(seed=2**63 - 1).seed == 2**63 - 1 and chat(seed=-(2**63)).seed == -(2**63)
    assert param_of(seed=2**63) == "seed" and param_of(seed=2**64 - 1) == "seed"
    assert choice_seed(None, 3) is None and choice_seed(7, 0) == 7 and choice_seed(7, 2) == 9
    assert choice_seed(2**63 - 1, 1) == -(2**63) and choice_seed(-(2**63), 0) == -(2**63)
    torch = pytest.importorskip("torch")
    with torch.random.fork_rng():
        for j in range(16):  # the hf backend seeds torch with each streamed choice's seed
            torch.manual_seed(choice_seed(2**63 - 1, j))


def test_wire_token_limit_prefers_max_completion_tokens():
    assert chat(max_tokens=5, max_completion_tokens=7).token_limit == 7
    assert chat(max_tokens=5).token_limit == 5


def test_message_text_and_roles():
    req = chat(messages=[{"role": "user", "content": [{"type": "text", "text": "a"},
                                                      {"type": "text", "text": "b"}]},
                         {"role": "assistant", "tool_calls": [{"id": "1"}]},
                         {"role": "assistant", "content": "Let me look.",
                          "tool_calls": [{"id": "2"}]},
                         {"role": "assistant", "content": ""}])
    assert req.messages[0].text == "a\nb" and req.messages[1].text == '[{"id": "1"}]'
    assert req.messages[2].text == 'Let me look.\n[{"id": "2"}]' and req.messages[3].text == ""


def test_tool_history_reaches_the_backend_as_user_text():
    def call(i: int, city: str) -> dict:
        return {"id": f"call_{i}", "type": "function",
                "function": {"name": "get_weather", "arguments": f'{{"city": "{city}"}}'}}

    req = chat(messages=[
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": [call(1, "Paris"), call(2, "Rome")]},
        {"role": "tool", "tool_call_id": "call_1", "content": "21C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "25C"}]},
        {"role": "assistant", "content": "Paris 21C, Rome 25C."},
        {"role": "assistant", "function_call": {"name": "clock", "arguments": "{}"}},
        {"role": "function", "name": "clock", "content": "noon"},
        {"role": "user", "content": "Thanks; and the time?"}])
    request = build_chat_job(req, CATALOG, ServerConfig(), 10_000).units[0].request
    msgs = [(m.role, m.content) for m in request.messages]
    assert [role for role, _ in msgs] == ["user", "assistant", "user", "assistant", "assistant",
                                          "user", "user"]
    assert '"id": "call_2"' in msgs[1][1] and '"name": "clock"' in msgs[4][1]
    assert msgs[2][1] == ("Tool result (call_1, get_weather): 21C\n\n"
                          "Tool result (call_2, get_weather): 25C")  # parallel calls: one turn
    assert msgs[5][1] == "Tool result (clock): noon"
    sent = request_to_params(request, "upstream")["messages"]
    assert [m["role"] for m in sent] == [role for role, _ in msgs]  # never a bare `tool`


def test_a_tool_result_without_its_call_still_names_it():
    req = chat(messages=[{"role": "tool", "tool_call_id": "call_9", "content": "ok"},
                         {"role": "user", "content": "go on"}])
    request = build_chat_job(req, CATALOG, ServerConfig(), 10_000).units[0].request
    assert [(m.role, m.content) for m in request.messages] == [
        ("user", "Tool result (call_9): ok"), ("user", "go on")]


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


@pytest.mark.parametrize("exc,status,retry", [
    (InvalidInputError("x"), 400, None), (BackendRequestError("x", status=400), 400, None),
    (BackendRequestError("x", status=503), 502, None), (BackendUnavailableError("x"), 503, "true"),
    (ModelNotFoundError("x"), 503, "false"), (StoreError("x"), 503, "true"),
    (CancelledError("x"), 499, None), (RuntimeError("boom"), 500, "false"),
    (ConfigError("unknown router policy 'x'"), 500, "false"),
])
def test_error_mapping(exc, status, retry):
    err = to_api_error(exc)
    assert err.status == status
    assert err.type == ("server_error" if status >= 500 else "invalid_request_error")
    assert err.headers.get("x-should-retry") == retry  # the SDKs retry any 5xx unless told not
    assert set(err.body()["error"]) == {"message", "type", "param", "code"}
    if status == 500:
        assert "boom" not in err.message  # internals are not shown to clients


class _WordTokenizer:
    """One token per word, the chat template a plain join."""

    def apply_chat_template(self, messages: list[dict], **_kw) -> str:
        return " ".join(m["content"] for m in messages)

    def __call__(self, text: str, **_kw) -> SimpleNamespace:
        return SimpleNamespace(input_ids=text.split())


def test_context_overflow_is_context_length_exceeded():
    hf = SimpleNamespace(model=object(), _tok_lock=threading.Lock(),
                         tokenizer=_WordTokenizer(), _max_len=8)
    with pytest.raises(BackendRequestError) as e:
        HFBackend._prepare(hf, ChatRequest.of("one two three four five", max_tokens=4))
    err = to_api_error(e.value)
    assert (err.status, err.code, err.param) == (400, "context_length_exceeded", "messages")
    assert err.message.startswith("This model's maximum context length is 8 tokens.")
    assert "(5 in the messages, 4 in the completion)" in err.message
    assert to_api_error(e.value, "prompt").param == "prompt"  # legacy completions
    other = to_api_error(BackendRequestError("bad schema", status=400))
    assert (other.code, other.param) == ("backend_request_error", None)


def _solver(body: dict, legacy: bool = False):
    if legacy:
        return build_completion_job(CompletionRequest.model_validate(
            {"model": "agentrt-fast", "prompt": "2+2?", **body}), CATALOG, ServerConfig(), 1000)
    return build_chat_job(ChatCompletionRequest.model_validate(
        {"model": "agentrt-fast", "messages": [{"role": "user", "content": "2+2?"}], **body}),
        CATALOG, ServerConfig(), 1000)


@pytest.mark.parametrize("legacy", [False, True])
def test_solver_models_refuse_top_p_and_seed(legacy):
    job = _solver({"temperature": 0.3, "top_p": 1}, legacy)
    assert job.solve_options == {"temperature": 0.3}
    for body, param in (({"top_p": 0.5}, "top_p"), ({"seed": 7}, "seed")):
        with pytest.raises(APIError) as e:
            _solver(body, legacy)
        assert (e.value.status, e.value.param, e.value.code) == (
            400, param, "unsupported_parameter")
    passthrough = build_chat_job(chat(top_p=0.5, seed=7), CATALOG, ServerConfig(), 1000)
    params = passthrough.units[0].request.params
    assert (params.top_p, params.seed) == (0.5, 7)


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


def test_the_limiter_counts_slots_and_admits_an_oversized_request_only_when_idle():
    from agentrt.server.limits import ConcurrencyLimiter

    limiter = ConcurrencyLimiter(3, retry_after_s=1)
    limiter.acquire(5)  # more than the limit, but nothing else runs
    with pytest.raises(APIError) as e:
        limiter.acquire()
    assert e.value.status == 429
    limiter.release(5)
    limiter.acquire(2)
    limiter.acquire()
    assert limiter.in_flight == 3
    with pytest.raises(APIError):
        limiter.acquire()
    limiter.release(3)
    assert limiter.in_flight == 0
