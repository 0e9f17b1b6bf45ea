"""Odd text, HEAD probes, bad schemas and hostile errors: clean answers, never a 500 or a late 200.

Lone surrogates (which no UTF-8 body can carry, but a JSON `\\ud800` escape can, and JavaScript
clients send them) are cleaned once, at parsing, on every route. A malformed or refused JSON
schema is a 400 before a stream starts. Error messages carry no library source paths, and log
lines hold no raw terminal escapes.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import openai
import pytest
from fake_server_app import HOSTILE, MODEL, WORDS
from server_harness import launch, stop

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def post_raw(server, path: str, body: dict, **headers: str) -> httpx.Response:
    """POST `body` as ASCII JSON, so lone surrogates travel as `\\udXXX` escapes."""
    return httpx.post(f"{server.url}{path}", content=json.dumps(body),
                      headers={**server.headers(), "Content-Type": "application/json", **headers},
                      timeout=60)


def sse_events(resp: httpx.Response) -> list[dict]:
    lines = [ln for ln in resp.text.split("\n") if ln]
    assert lines[-1] == "data: [DONE]", resp.text[-300:]
    return [json.loads(ln[6:]) for ln in lines if ln.startswith("data: {")]


def streamed_text(events: list[dict], field: str = "text") -> str:
    assert not [e for e in events if "error" in e], events
    parts = []
    for e in events:
        for c in e.get("choices", []):
            parts.append(c.get(field) or (c.get("delta") or {}).get("content") or "")
    return "".join(parts)


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("model", [MODEL, "agentrt-fast"])
def test_echoed_lone_surrogate_and_nul_are_cleaned(server, stream, model):
    body = {"model": model, "prompt": "x\ud800y\x00z", "echo": True, "max_tokens": 3,
            "stream": stream}
    resp = post_raw(server, "/v1/completions", body)
    assert resp.status_code == 200, resp.text
    text = (streamed_text(sse_events(resp)) if stream
            else resp.json()["choices"][0]["text"])
    assert text.startswith("x\ufffdy\ufffdz")


@pytest.mark.parametrize("stream", [False, True])
def test_lone_surrogates_anywhere_in_a_chat_request(server, stream):
    body = {"model": MODEL, "max_tokens": 3, "stream": stream, "user": "\udfff",
            "stop": ["\ud800"], "metadata": {"k\ud800": "v\udc00"},
            "messages": [{"role": "system", "content": [{"type": "text", "text": "s\ud800"}]},
                         {"role": "user", "content": "Say it \ud83d"}]}
    resp = post_raw(server, "/v1/chat/completions", body)
    assert resp.status_code == 200, resp.text
    text = (streamed_text(sse_events(resp)) if stream
            else resp.json()["choices"][0]["message"]["content"])
    assert text == " ".join(WORDS.split()[:3])
    bad_model = post_raw(server, "/v1/chat/completions", {**body, "model": "nope\ud800"})
    assert bad_model.status_code == 404 and "nope\ufffd" in bad_model.json()["error"]["message"]


def test_lone_surrogate_with_an_idempotency_key(server):
    body = {"model": MODEL, "prompt": "k\ud800", "echo": True, "max_tokens": 2}
    first = post_raw(server, "/v1/completions", body, **{"Idempotency-Key": "surrogate-1"})
    again = post_raw(server, "/v1/completions", body, **{"Idempotency-Key": "surrogate-1"})
    assert first.status_code == again.status_code == 200, first.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert first.json()["choices"] == again.json()["choices"]


def test_head_health_is_200_without_a_body(server):
    resp = httpx.head(f"{server.url}/health", timeout=10)  # no key: /health is open
    assert resp.status_code == 200 and resp.content == b""
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"


@pytest.mark.parametrize("path,status", [("/v1/models", 200), (f"/v1/models/{MODEL}", 200),
                                         ("/v1/models/agentrt-fast", 200),
                                         ("/v1/models/no-such-model", 404)])
def test_head_models_answers_like_get_without_a_body(server, path, status):
    head = httpx.head(f"{server.url}{path}", headers=server.headers(), timeout=10)
    get = httpx.get(f"{server.url}{path}", headers=server.headers(), timeout=10)
    assert head.status_code == get.status_code == status and head.content == b""
    assert head.headers["content-type"] == get.headers["content-type"] == "application/json"
    assert int(head.headers["content-length"]) == len(get.content)
    assert httpx.head(f"{server.url}{path}", timeout=10).status_code == 401  # behind the key


BAD_SCHEMAS = [
    ({"type": "bogus"}, "'bogus' is not a JSON Schema type"),
    ({"type": "object", "properties": "name"}, "properties must be an object"),
    ({"type": "object", "properties": {"n": {"type": "string", "minLength": -1}}},
     "schema.properties.n.minLength"),
    ({"type": "object", "required": "name"}, "required must be a list"),
    ({"anyOf": []}, "anyOf must be a non-empty list"),
]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("schema, says", BAD_SCHEMAS)
def test_malformed_schema_is_400_before_any_stream(server, schema, says, stream):
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    with pytest.raises(openai.BadRequestError) as err:
        server.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Name a color."}],
            response_format=fmt, max_tokens=5, stream=stream)
    assert err.value.status_code == 400
    body = err.value.body
    assert body["param"] == "response_format.json_schema.schema" and says in body["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_schema_the_backend_refuses_is_400_without_library_paths(server, stream):
    fmt = {"type": "json_schema",
           "json_schema": {"name": "x", "schema": {"type": "object", "x-refuse": True}}}
    with pytest.raises(openai.BadRequestError) as err:
        server.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Name a color."}],
            response_format=fmt, max_tokens=5, stream=stream)
    message = err.value.body["message"]
    assert message == "cannot compile JSON schema: Unsupported keyword"
    assert "/project" not in message and ".cc" not in message


def test_unexpected_error_is_500_and_its_log_is_escaped(server):
    resp = server.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": "[raise-hostile]"}]})
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "internal_error"
    assert resp.headers["x-should-retry"] == "false"  # a server fault repeats: no SDK retries
    assert "owned" not in resp.text
    deadline = time.monotonic() + 10
    while "RuntimeError" not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log.read_text(encoding="utf-8", errors="replace")
    assert "RuntimeError: \\x1b[2J\\x1b]0;owned" in log
    assert RAW.search(log.replace("\n", " ")) is None
    assert HOSTILE not in log


def test_cors_is_off_unless_origins_are_named_then_a_preflight_passes(server, tmp_path):
    origin = "http://app.example.test:8080"
    preflight = {"Origin": origin, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os"}
    r = httpx.options(f"{server.url}/v1/chat/completions", headers=preflight, timeout=30)
    assert "access-control-allow-origin" not in r.headers
    cors = launch(tmp_path, env={"AGENTRT_SERVER_CORS_ORIGINS": f"{origin}, http://b.test"})
    try:
        r = httpx.options(f"{cors.url}/v1/chat/completions", headers=preflight, timeout=30)
        assert r.status_code == 200, r.text  # no key asked of a preflight
        assert r.headers["access-control-allow-origin"] == origin
        assert "x-stainless-os" in r.headers["access-control-allow-headers"].lower()
        r = httpx.get(f"{cors.url}/v1/models", headers={"Origin": origin, **cors.headers()},
                      timeout=30)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == origin
        assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
        r = httpx.get(f"{cors.url}/v1/models", headers={"Origin": "http://evil.test"}, timeout=30)
        assert r.status_code == 401 and "access-control-allow-origin" not in r.headers
    finally:
        stop(cors)


def test_a_cors_origin_with_a_path_is_a_config_error():
    from agentrt.server.config import ServerConfig

    with pytest.raises(ValueError, match="CORS origin"):
        ServerConfig(cors_origins=["http://a.test/app"])
    assert ServerConfig(cors_origins="*, https://a.test").cors_origins == ["*", "https://a.test"]
