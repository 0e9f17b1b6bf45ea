"""The hf backend's Prometheus metrics on the tiny random Llama: rows waiting and decoding,
rows per decode step, joins into a running decode, and prefix-cache hits.

Counters are process-wide and other tests move them too, so each test reads differences."""

from __future__ import annotations

import threading

from agentrt.core import metrics
from agentrt.core.types import ChatRequest
from agentrt.llm.hf import HFBackend

LONG = "Tell me a long story about dragons and knights in a castle by the sea"
SYSTEM = ("You are a careful assistant. Answer in one short sentence, and never use more words "
          "than the question needs.")


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_join_moves_the_batch_metrics_and_the_live_levels(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", batch_wait_s=0, prefix_cache_mb=0)
    joins, steps = value("agentrt_decode_joins_total"), value("agentrt_decode_batch_rows_count")
    rows = value("agentrt_decode_batch_rows_sum")
    at_token, release, seen = threading.Event(), threading.Event(), []

    def pause(token: int) -> None:  # the worker waits at the long row's third token
        seen.append(token)
        if len(seen) == 3:
            at_token.set()
            release.wait(10)

    job = backend._prepare(ChatRequest.of(LONG, max_tokens=12))
    job.on_token = pause
    long_future = backend._engine.submit(job)
    assert at_token.wait(10)
    short_future = backend._submit([backend._prepare(ChatRequest.of("hello", max_tokens=4))])[0]
    assert backend.running_rows == 1 and backend.waiting_rows.count == 1  # the short one waits
    release.set()
    short_future.result(timeout=30)
    long_future.result(timeout=30)
    assert value("agentrt_decode_joins_total") == joins + 1
    # 12 steps for the long row, 4 of them with the short row beside it
    assert value("agentrt_decode_batch_rows_count") == steps + 12
    assert value("agentrt_decode_batch_rows_sum") == rows + 12 + 4
    assert backend.running_rows == 0 and backend.waiting_rows.count == 0
    backend.close()


def test_prefix_cache_hits_and_reused_tokens_are_counted(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", batch_wait_s=0)
    lookups, hits = value("agentrt_prefix_cache_lookups_total"), value(
        "agentrt_prefix_cache_hits_total")
    reused = value("agentrt_prefix_cache_reused_tokens_total")
    for question in ("What is 2+3?", "Name a colour."):
        backend.chat(ChatRequest.of(question, system=SYSTEM, max_tokens=2))
    stats = backend.prefix_cache.stats  # what /health shows, for this one backend
    assert value("agentrt_prefix_cache_lookups_total") - lookups == stats.lookups >= 1
    assert value("agentrt_prefix_cache_hits_total") - hits == stats.hits == 1
    tokens = value("agentrt_prefix_cache_reused_tokens_total") - reused
    assert tokens == stats.tokens_reused >= 16
    assert value("agentrt_prefix_cache_bytes") >= backend.prefix_cache.bytes > 0
    backend.close()
