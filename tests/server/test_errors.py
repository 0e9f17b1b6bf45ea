"""Error paths: 401, 404, 400 (with the parameter named), 413, 503; never a 500 for bad input.

The error body is always OpenAI's `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from server_harness import KEY
from fake_server_app import CONTEXT, MODEL, WORDS

USER = [{"role": "user", "content": "Say the words."}]
BASE = {"model": MODEL, "messages": USER}


def shape(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


def with_(**changes):
    body = dict(BASE)
    for k, v in changes.items():
        if v is _DROP:
            body.pop(k, None)
        else:
            body[k] = v
    return body


_DROP = object()


def test_auth_required_except_health(server):
    assert httpx.get(f"{server.url}/health").status_code == 200
    for headers in ({}, {"Authorization": "Bearer wrong-key-123"}, {"Authorization": KEY},
                    {"Authorization": f"Basic {KEY}"}):
        r = httpx.get(f"{server.url}/v1/models", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert shape(r)["code"] in ("missing_api_key", "invalid_api_key")
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key="sk-wrong-key").chat.completions.create(model=MODEL, messages=USER)
    assert server.post("/v1/chat/completions", json=BASE).status_code == 200


def test_unknown_model_and_route_are_404(server):
    with pytest.raises(openai.NotFoundError) as e:
        server.client().chat.completions.create(model="gpt-nothing", messages=USER)
    assert e.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        server.client().completions.create(model="gpt-nothing", prompt="x")
    r = server.post("/v1/nothing", json={})
    assert r.status_code == 404 and "Invalid URL" in shape(r)["message"]


@pytest.mark.parametrize("body,param", [
    (with_(model=_DROP), "model"),
    (with_(temperature="hot"), "temperature"),
    (with_(temperature=2.5), "temperature"),
    (with_(n=0), "n"),
    (with_(n=9), "n"),
    (with_(max_tokens=0), "max_tokens"),
    (with_(max_tokens=10**9), "max_tokens"),
    (with_(max_completion_tokens="5"), "max_completion_tokens"),
    (with_(stop=[""]), "stop"),
    (with_(stop=["a", "b", "c", "d", "e"]), "stop"),
    (with_(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (with_(messages=[{"role": "wizard", "content": "x"}]), "messages[0].role"),
    (with_(messages=[{"role": "tool", "content": "x"}]), "messages[0]"),
    (with_(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
     "messages[0].content"),
    (with_(logprobs=True), "logprobs"),
    (with_(frequency_penalty=0.5), "frequency_penalty"),
    (with_(tool_choice="required"), "tool_choice"),
    (with_(stream_options={"include_usage": True}), "stream_options"),
    (with_(top_logprobs=2), "top_logprobs"),
    (with_(response_format={"type": "xml"}), "response_format.type"),
    (with_(model="agentrt-fast", response_format={"type": "json_object"}), "response_format"),
    (with_(model="agentrt-fast", messages=[{"role": "assistant", "content": "hi"}]), "messages"),
    (with_(messages=[{"role": "user", "content": "x"}] * 51), "messages"),
    (with_(messages=[{"role": "user", "content": "x" * 8001}]), "messages[0].content"),
])
def test_invalid_parameters_are_400_naming_the_param(server, body, param):
    r = server.post("/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = shape(r)
    assert err["type"] == "invalid_request_error"
    if param is not None:
        assert err["param"] == param, err


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded",
                                          "text/plain"])
def test_a_body_not_sent_as_json_is_refused_naming_the_content_type(server, content_type):
    headers = {**server.headers(), **({"Content-Type": content_type} if content_type else {})}
    r = httpx.post(f"{server.url}/v1/chat/completions", content=json.dumps(BASE),
                   headers=headers, timeout=60)  # what `curl -d` sends without -H
    assert r.status_code == 400
    err = shape(r)
    assert err["message"].startswith("Content-Type must be application/json"), err
    assert (err["param"], err["code"]) == (None, "invalid_content_type")
    ok = httpx.post(f"{server.url}/v1/chat/completions", content=json.dumps(BASE), timeout=60,
                    headers={**server.headers(), "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_an_empty_body_names_no_parameter(server):
    r = server.post("/v1/chat/completions", content=b"",
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    err = shape(r)
    assert err["param"] is None and "None" not in err["message"] and "empty" in err["message"]


def test_media_content_part_is_an_unsupported_value(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in it?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}])
    assert e.value.body["code"] == "unsupported_value"
    assert e.value.body["param"] == "messages[0].content"


@pytest.mark.parametrize("path,body,param", [
    ("/v1/chat/completions", with_(messages=[{"role": "user", "content": "[context-overflow]"}]),
     "messages"),
    ("/v1/completions", {"model": MODEL, "prompt": "[context-overflow]"}, "prompt"),
])
def test_context_overflow_is_context_length_exceeded(server, path, body, param):
    r = server.post(path, json=body)
    assert r.status_code == 400
    err = shape(r)
    assert (err["type"], err["code"], err["param"]) == (
        "invalid_request_error", "context_length_exceeded", param)
    assert err["message"].startswith(f"This model's maximum context length is {CONTEXT} tokens")
    with pytest.raises(openai.BadRequestError) as e:  # as LiteLLM and LangChain look for it
        server.client().chat.completions.create(
            model=MODEL, stream=True, messages=[{"role": "user", "content": "[context-overflow]"}])
    assert e.value.code == "context_length_exceeded"


def test_backend_down_is_503_inviting_a_retry(server):
    r = server.post("/v1/chat/completions",
                    json=with_(messages=[{"role": "user", "content": "[backend-down]"}]))
    assert r.status_code == 503 and shape(r)["code"] == "backend_unavailable"
    assert r.headers["x-should-retry"] == "true" and r.headers["retry-after"] == "1"


def test_openai_client_sees_bad_request(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().chat.completions.create(model=MODEL, messages=USER, temperature=-1)
    assert e.value.body["param"] == "temperature"


def test_body_over_limit_is_413_with_or_without_length(server):
    big = {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]}
    r = server.post("/v1/chat/completions", json=big)
    assert r.status_code == 413 and shape(r)["code"] == "request_too_large"

    def chunked():  # no Content-Length: the server must count while reading
        yield b'{"model": "fake-echo", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}]}'

    r = server.post("/v1/chat/completions", content=chunked(),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
    with pytest.raises(openai.APIStatusError) as e:
        server.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "z" * 70_000}])
    assert e.value.status_code == 413
    assert server.post("/v1/chat/completions", json=BASE).status_code == 200


def _malformed() -> list[tuple[str, bytes]]:
    """At least 100 invalid requests of many kinds: (path, raw body)."""
    chat, text = "/v1/chat/completions", "/v1/completions"
    raw = [b"", b"{", b"nul", b"[]", b"123", b'"s"', b"{'a': 1}", b"\xff\xfe\x00",
           b"[" * 20000 + b"]" * 20000, b'{"model": "fake-echo", "messages": [}',
           b'{"model": "fake-echo", "temperature": NaN, "messages": []}']
    out = [(chat, b) for b in raw] + [(text, b) for b in raw[:5]]
    bad_values = {
        "model": [None, 5, "", "x" * 300, ["a"], "gpt-nothing"],
        "messages": [None, [], "hi", [{}], [5], [{"role": "user"}], [{"content": "x"}],
                     [{"role": "user", "content": [5]}], [{"role": "user", "content": [{}]}],
                     [{"role": "user", "content": [{"type": "text"}]}],
                     [{"role": "assistant"}], [{"role": "function", "content": "x"}]],
        "temperature": [-1, 3, "1", True, [1]],
        "top_p": [2, -0.1, "x"],
        "n": [0, -1, 1.5, "2", 129, 9],
        "max_tokens": [0, -5, "10", 1.5, 10**12],
        "max_completion_tokens": [0, False],
        "stop": [5, [1], ["a"] * 5, [""], "", {"a": 1}],
        "stream": ["yes", 1],
        "stream_options": ["x", {"include_usage": True}],
        "seed": ["x", 1.5, 2**70],
        "response_format": ["json", {"type": "xml"}, {"type": "json_schema"},
                            {"type": "json_schema", "json_schema": {"name": "a b"}}],
        "logprobs": [True, "yes"],
        "top_logprobs": [5, 30],
        "frequency_penalty": [3, 0.5],
        "presence_penalty": [-3, "0"],
        "logit_bias": [{"x": 1}, {"50256": 200}, {"1": 5}, "x"],
        "tools": ["x", [5]],
        "tool_choice": ["required", {"type": "function", "function": {"name": "f"}}, 5],
        "metadata": [{"a": 1}],
        "user": [5],
        "modalities": [["audio"]],
        "audio": [{"voice": "alloy"}],
        "web_search_options": [{}],
    }
    for key, values in bad_values.items():
        for v in values:
            out.append((chat, json.dumps({**BASE, key: v}).encode()))
    solver = {"model": "agentrt-fast"}
    for msgs in ([{"role": "assistant", "content": "x"}], [{"role": "user", "content": "  "}]):
        out.append((chat, json.dumps({**solver, "messages": msgs}).encode()))
    base_text = {"model": MODEL, "prompt": "x"}
    for key, v in [("prompt", None), ("prompt", 5), ("prompt", [1, 2]), ("prompt", []),
                   ("suffix", "s"), ("best_of", 3), ("logprobs", 1), ("echo", "x"),
                   ("max_tokens", 0), ("n", 0), ("model", "gpt-nothing")]:
        out.append((text, json.dumps({**base_text, key: v}).encode()))
    out.append((text, json.dumps({"model": MODEL}).encode()))
    return out


def test_hundred_invalid_requests_then_a_valid_one(server):
    cases = _malformed()
    assert len(cases) >= 100
    with httpx.Client(base_url=server.url, headers=server.headers(), timeout=30) as http:
        for path, body in cases:
            r = http.post(path, content=body, headers={"content-type": "application/json"})
            assert r.status_code in (400, 404, 413), (path, body[:200], r.status_code, r.text)
            shape(r)
        ok = http.post("/v1/chat/completions", json={**BASE, "temperature": 0})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == WORDS
    assert server.proc.poll() is None
    assert "Traceback" not in server.log.read_text()  # no request reached an unexpected error
