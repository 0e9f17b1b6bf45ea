"""`/metrics` on a real server: requests through the official client move the counters by the
right amounts under the right labels, and the route sits behind the API key.

The shared server's counters accumulate over the whole test session, so every test reads the
exposition before and after and asserts on the difference.
"""

from __future__ import annotations

import threading
import time

import httpx
from fake_server_app import MODEL
from prometheus_client.parser import text_string_to_metric_families

Samples = dict[tuple[str, frozenset], float]


def scrape(server) -> Samples:
    resp = httpx.get(f"{server.url}/metrics", headers=server.headers(), timeout=30)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_need_the_api_key(server):
    assert httpx.get(f"{server.url}/metrics", timeout=30).status_code == 401
    bad = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer sk-wrong-key-123"},
                    timeout=30)
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_api_key"
    before = scrape(server)
    httpx.get(f"{server.url}/metrics", timeout=30)
    after = scrape(server)
    assert delta(before, after, "agentrt_http_requests_total",
                 model="", route="/metrics", status="401") == 1
    assert httpx.get(f"{server.url}/health", timeout=30).status_code == 200  # still open


def test_passthrough_requests_count_by_model_route_status_and_tokens(server):
    client = server.client()
    before = scrape(server)
    plain = client.chat.completions.create(
        model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "Say something."}])
    chunks = list(client.chat.completions.create(
        model=MODEL, max_tokens=7, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Say more."}]))
    streamed = chunks[-1].usage
    text = client.completions.create(model=MODEL, prompt="Once", max_tokens=3)
    unknown = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
    assert server.post("/v1/chat/completions", json=unknown).status_code == 404
    nope = httpx.get(f"{server.url}/v1/nope", headers=server.headers(), timeout=30)
    assert nope.status_code == 404
    after = scrape(server)

    chat = {"model": MODEL, "route": "/v1/chat/completions"}
    assert delta(before, after, "agentrt_http_requests_total", **chat, status="200") == 2
    assert delta(before, after, "agentrt_http_requests_total", model=MODEL,
                 route="/v1/completions", status="200") == 1
    assert delta(before, after, "agentrt_http_requests_total", model="",
                 route="/v1/chat/completions", status="404") == 1  # the model was not served
    assert delta(before, after, "agentrt_http_requests_total", model="", route="unmatched",
                 status="404") == 1
    assert delta(before, after, "agentrt_http_request_duration_seconds_count", **chat) == 2
    assert delta(before, after, "agentrt_http_request_duration_seconds_sum", **chat) > 0
    prompt = plain.usage.prompt_tokens + streamed.prompt_tokens + text.usage.prompt_tokens
    completion = (plain.usage.completion_tokens + streamed.completion_tokens
                  + text.usage.completion_tokens)
    assert completion == 5 + 7 + 3
    assert delta(before, after, "agentrt_prompt_tokens_total", model=MODEL) == prompt
    assert delta(before, after, "agentrt_completion_tokens_total", model=MODEL) == completion


def test_refused_requests_count_under_their_route(server):
    before = scrape(server)
    big = server.post("/v1/chat/completions", content=b"x" * 70_000)  # over the 64 KiB limit
    assert big.status_code == 413
    after = scrape(server)
    assert delta(before, after, "agentrt_http_requests_total", model="",
                 route="/v1/chat/completions", status="413") == 1


def test_solves_count_by_mode_and_status_and_tokens_sum_their_calls(server):
    client = server.client()
    before = scrape(server)
    fast = client.chat.completions.create(
        model="agentrt-fast", messages=[{"role": "user", "content": "What is 17*23+5?"}])
    slow = client.chat.completions.create(
        model="agentrt-slow", messages=[{"role": "user", "content": "Compute 123*456 - 789"}])
    after = scrape(server)
    assert fast.choices[0].message.content == "396" and slow.choices[0].message.content == "55299"
    assert delta(before, after, "agentrt_solves_total", mode="fast", status="ok") == 1
    assert delta(before, after, "agentrt_solves_total", mode="slow", status="ok") == 1
    assert delta(before, after, "agentrt_solve_duration_seconds_count", mode="slow") == 1
    assert delta(before, after, "agentrt_completion_tokens_total", model="agentrt-fast") == \
        fast.usage.completion_tokens > 0
    # the slow design's python node ran once in the sandbox and printed the answer
    assert delta(before, after, "agentrt_sandbox_runs_total", status="ok") == 1
    assert delta(before, after, "agentrt_sandbox_run_duration_seconds_count", status="ok") == 1
    assert delta(before, after, "agentrt_sandbox_run_duration_seconds_sum", status="ok") > 0


def test_requests_in_flight_is_read_at_scrape_time(server):
    client = server.client()
    done = threading.Event()

    def slow_call() -> None:
        try:
            client.chat.completions.create(
                model=MODEL, max_tokens=3, messages=[{"role": "user", "content": "[sleep=3]"}])
        finally:
            done.set()

    worker = threading.Thread(target=slow_call)
    worker.start()
    deadline = time.monotonic() + 10
    seen = 0.0
    while not done.is_set() and time.monotonic() < deadline and seen < 1:
        seen = scrape(server)[("agentrt_requests_in_flight", frozenset())]
        time.sleep(0.1)
    worker.join(30)
    assert seen >= 1
