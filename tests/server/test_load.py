"""Load, deadlines and disconnects against a server with 2 request slots and a 3 s deadline."""

from __future__ import annotations

import threading
import time

import httpx
import openai
import pytest
from fake_server_app import MODEL, WORDS


def slow_msgs(seconds: float, text: str = "Say the words.") -> list[dict]:
    return [{"role": "user", "content": f"{text} [sleep={seconds}]"}]


def wait_idle(server, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{server.url}/health").json()["in_flight"] == 0:
            return
        time.sleep(0.1)
    raise AssertionError("the server did not become idle")


def wait_in_flight(server, n: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{server.url}/health").json()["in_flight"] < n:
        assert time.monotonic() < deadline, "requests did not start"
        time.sleep(0.02)


def background(fn, *args, **kw) -> threading.Thread:
    t = threading.Thread(target=lambda: _swallow(fn, *args, **kw), daemon=True)
    t.start()
    return t


def _swallow(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except Exception:  # noqa: BLE001 - the outcome of background load is not under test
        pass


def latest_trace(server, model: str):
    with server.store() as store:
        rows = store.list_traces(limit=1, tags={"api_model": model})
        return store.get_trace(rows[0].id) if rows else None


def test_concurrency_limit_is_429_with_retry_after(tight_server):
    wait_idle(tight_server)
    client = tight_server.client()
    busy = [background(client.chat.completions.create, model=MODEL, messages=slow_msgs(1.5))
            for _ in range(2)]
    wait_in_flight(tight_server, 2)
    r = tight_server.post("/v1/chat/completions", json={"model": MODEL, "messages": slow_msgs(0)})
    assert r.status_code == 429 and r.headers["retry-after"] == "2"
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=slow_msgs(0))
    for t in busy:
        t.join()
    wait_idle(tight_server)
    assert client.chat.completions.create(model=MODEL, messages=slow_msgs(0)).choices


def test_a_request_that_fans_out_takes_a_slot_per_max_n_choices(tight_server):
    # 9 prompts at the default max_n of 8: two slots, the whole limit of this server
    wait_idle(tight_server)
    client = tight_server.client()
    prompts = [f"Say the words {i}. [sleep=1.5]" for i in range(9)]
    busy = background(client.completions.create, model=MODEL, prompt=prompts, max_tokens=4)
    wait_in_flight(tight_server, 2)
    r = tight_server.post("/v1/chat/completions", json={"model": MODEL, "messages": slow_msgs(0)})
    assert r.status_code == 429
    busy.join()
    wait_idle(tight_server)
    assert client.chat.completions.create(model=MODEL, messages=slow_msgs(0)).choices


def timeouts_answered(server) -> float:
    """504s answered on the chat route so far (from /metrics)."""
    resp = httpx.get(f"{server.url}/metrics", headers=server.headers(), timeout=30)
    labels = f'model="{MODEL}",route="/v1/chat/completions",status="504"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in resp.text.splitlines()
               if line.startswith("agentrt_http_requests_total{") and labels in line)


def test_request_past_the_deadline_is_504_then_healthy(tight_server):
    wait_idle(tight_server)
    r = tight_server.post("/v1/chat/completions",
                          json={"model": MODEL, "messages": slow_msgs(4.5)})
    assert r.status_code == 504 and r.json()["error"]["type"] == "timeout_error"
    assert r.headers["x-should-retry"] == "false"  # a retry would run as long again
    wait_idle(tight_server)
    before = timeouts_answered(tight_server)
    with pytest.raises(openai.APIStatusError) as e:  # the SDK retries 5xx unless told not to
        tight_server.client(max_retries=2).chat.completions.create(
            model=MODEL, messages=slow_msgs(4.5, "Once."))
    assert e.value.status_code == 504 and timeouts_answered(tight_server) == before + 1
    wait_idle(tight_server)
    ok = tight_server.client().chat.completions.create(model=MODEL, messages=slow_msgs(0),
                                                       temperature=0)
    assert ok.choices[0].message.content == WORDS


def test_stream_past_the_deadline_ends_with_an_error_event(tight_server):
    wait_idle(tight_server)
    with pytest.raises(openai.APIError) as e:
        list(tight_server.client().chat.completions.create(
            model="agentrt-fast", messages=slow_msgs(2, "What is 2+2?"), stream=True))
    assert "deadline" in str(e.value)
    wait_idle(tight_server)


def test_client_timeouts_under_load_then_healthy(tight_server):
    wait_idle(tight_server)
    client = tight_server.client(timeout=0.5)
    outcomes = []

    def call():
        try:
            client.chat.completions.create(model=MODEL, messages=slow_msgs(1.5))
            outcomes.append("ok")
        except openai.APITimeoutError:
            outcomes.append("timeout")
        except openai.RateLimitError:
            outcomes.append("429")

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "timeout" in outcomes and set(outcomes) <= {"timeout", "429"}
    wait_idle(tight_server)
    assert httpx.get(f"{tight_server.url}/health").json()["status"] == "ok"
    ok = tight_server.client().chat.completions.create(model=MODEL, messages=slow_msgs(0))
    assert ok.choices[0].finish_reason == "stop"


def test_stream_disconnect_cancels_the_solve(tight_server):
    wait_idle(tight_server)
    body = {"model": "agentrt-fast", "stream": True,
            "messages": slow_msgs(1.0, "What is 6*7? (stream)")}
    with httpx.stream("POST", f"{tight_server.url}/v1/chat/completions", json=body,
                      headers=tight_server.headers(), timeout=10) as r:
        trace_id = r.headers["x-agentrt-trace-id"]
        next(r.iter_lines())  # the role chunk: the solve is running; now hang up
    _assert_cancelled(tight_server, trace_id)


def test_non_streaming_disconnect_cancels_the_solve(tight_server):
    wait_idle(tight_server)
    body = {"model": "agentrt-fast", "messages": slow_msgs(1.0, "What is 5*8? (plain)")}
    with pytest.raises(httpx.ReadTimeout):
        tight_server.post("/v1/chat/completions", json=body, timeout=0.5)
    deadline = time.monotonic() + 5
    while (trace := latest_trace(tight_server, "agentrt-fast")) is None or "5*8" not in trace.problem:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    _assert_cancelled(tight_server, trace.id)


def _assert_cancelled(server, trace_id: str) -> None:
    deadline = time.monotonic() + 10
    with server.store() as store:
        while (trace := store.get_trace(trace_id)).status == "running":
            assert time.monotonic() < deadline, "the solve was not cancelled"
            time.sleep(0.1)
    assert trace.status == "cancelled", trace.status
    # cancelled before or during the (one second) answer call; the self-check never ran
    assert [s.name for s in trace.steps if s.kind == "llm"] in ([], ["fast_answer"])
    wait_idle(server)
