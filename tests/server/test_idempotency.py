"""`Idempotency-Key`: a retried request returns the first result and trace; nothing runs twice."""

from __future__ import annotations

import threading
import uuid

import httpx
import pytest


def problem(tag: str, sleep: float = 0) -> list[dict]:
    suffix = f" [sleep={sleep}]" if sleep else ""
    return [{"role": "user", "content": f"What is 17*23+5? ({tag}){suffix}"}]


def traces_for(server, tag: str) -> list:
    with server.store() as store:
        return [t for t in store.list_traces(limit=500) if f"({tag})" in t.problem]


def call(server, key: str, **body):
    body.setdefault("model", "agentrt-fast")
    return server.post("/v1/chat/completions", json=body, headers={"Idempotency-Key": key})


def test_retry_returns_the_same_result_and_trace(server):
    tag, key = uuid.uuid4().hex[:8], str(uuid.uuid4())
    first = call(server, key, messages=problem(tag))
    again = call(server, key, messages=problem(tag))
    assert first.status_code == again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["x-agentrt-trace-id"] == first.headers["x-agentrt-trace-id"]
    assert len(traces_for(server, tag)) == 1
    other = call(server, str(uuid.uuid4()), messages=problem(tag))  # a new key runs again
    assert other.json()["id"] != first.json()["id"] and len(traces_for(server, tag)) == 2


def test_concurrent_retries_wait_for_the_first(server):
    tag, key = uuid.uuid4().hex[:8], str(uuid.uuid4())
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        call(server, key, messages=problem(tag, sleep=0.5)))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in results] == [200, 200, 200]
    assert len({r.json()["id"] for r in results}) == 1
    assert len(traces_for(server, tag)) == 1


def test_same_key_with_a_different_body_is_422(server):
    key = str(uuid.uuid4())
    assert call(server, key, messages=problem("a-" + key[:6])).status_code == 200
    r = call(server, key, messages=problem("b-" + key[:6]))
    assert r.status_code == 422 and r.json()["error"]["code"] == "idempotency_key_reused"


def test_streamed_request_replays_as_a_stream(server):
    tag, key = uuid.uuid4().hex[:8], str(uuid.uuid4())
    client = server.client()
    runs = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(
            model="agentrt-fast", messages=problem(tag), stream=True,
            stream_options={"include_usage": True}, extra_headers={"Idempotency-Key": key})
        chunks = list(raw.parse())
        text = "".join(c.delta.content or "" for ch in chunks for c in ch.choices)
        reasoning = "".join(getattr(c.delta, "reasoning_content", None) or ""
                            for ch in chunks for c in ch.choices)
        finish = [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]
        runs.append((chunks[0].id, text, reasoning, finish, chunks[-1].usage.model_dump()))
    assert runs[0] == runs[1] and runs[0][1] == "396" and runs[0][3] == ["stop"]
    assert len(traces_for(server, tag)) == 1


def test_cancelled_request_frees_its_key(server):
    tag, key = uuid.uuid4().hex[:8], str(uuid.uuid4())
    with pytest.raises(httpx.ReadTimeout):
        server.post("/v1/chat/completions", timeout=0.3, headers={"Idempotency-Key": key},
                    json={"model": "agentrt-fast", "messages": problem(tag, sleep=1)})
    retry = None
    for _ in range(50):  # the server notices the disconnect and releases the claim
        retry = call(server, key, messages=problem(tag, sleep=1))
        if retry.status_code == 200:
            break
    assert retry.status_code == 200 and retry.json()["choices"][0]["message"]["content"] == "396"
    statuses = sorted(t.status for t in traces_for(server, tag))
    assert statuses == ["cancelled", "ok"]


@pytest.mark.parametrize("key", ["has space", "x" * 256, "tab\tkey"])
def test_invalid_key_is_400(server, key):
    r = call(server, key, messages=problem("bad"))
    assert r.status_code == 400 and r.json()["error"]["param"] == "Idempotency-Key"
