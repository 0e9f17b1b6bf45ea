"""The prefix cache: longest shared start, memory budget, and decoding that reuses it."""

from __future__ import annotations

import pytest
import torch

from agentrt.core.errors import ConfigError
from agentrt.llm.decode import DecodeBatch
from agentrt.llm.hf import HFBackend, _Row
from agentrt.llm.prefix import PrefixCache
from agentrt.core.types import ChatRequest, SamplingParams


def kv(n: int, layers: int = 2, fill: float = 0.0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.full((3, n, 4), fill), torch.full((3, n, 4), fill)) for _ in range(layers)]


def test_the_longest_shared_start_is_found_and_one_token_is_left_to_prefill():
    cache = PrefixCache(min_tokens=4)
    cache.store(list(range(20)), kv(20, fill=1))
    cache.store([*range(10), 99, 98, 97, 96, 95], kv(15, fill=2))
    n, layers = cache.lookup([*range(12), 50, 51])
    assert n == 12 and layers[0][0][0, 0, 0] == 1
    n, layers = cache.lookup([*range(10), 99, 98, 97, 7])
    assert n == 13 and layers[0][0][0, 0, 0] == 2
    assert cache.lookup(list(range(20)))[0] == 19  # the last token is always computed
    assert cache.lookup([1, 2, 3, 4, 5]) == (0, None)  # no shared start
    assert cache.lookup([0, 1, 2, 9, 9]) == (0, None)  # shorter than min_tokens
    assert cache.stats.lookups == 5 and cache.stats.hits == 3 and cache.stats.tokens_reused == 44


def test_least_recently_used_prompts_go_first_past_the_budget():
    one = 2 * 2 * 3 * 10 * 4 * 4  # bytes of kv(10): layers x (k, v) x heads x tokens x dim x fp32
    cache = PrefixCache(max_bytes=2 * one, min_tokens=2)
    cache.store([1] * 10, kv(10))
    cache.store([2] * 10, kv(10))
    assert cache.lookup([1] * 5)[0] == 4  # touches the first prompt
    cache.store([3] * 10, kv(10))  # over budget: the second (least recently used) goes
    assert cache.lookup([2] * 5) == (0, None) and cache.lookup([1] * 5)[0] == 4
    assert len(cache) == 2 and cache.bytes == 2 * one
    cache.store([3] * 10, kv(10))  # storing again replaces, not doubles
    assert cache.bytes == 2 * one
    cache.store([4] * 100, kv(100))  # larger than the whole budget: not stored
    assert len(cache) == 2 and cache.lookup([4] * 5) == (0, None)
    cache.store([5], kv(1))  # shorter than min_tokens: not stored
    assert len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.bytes == 0
    with pytest.raises(ValueError):
        PrefixCache(min_tokens=0)


@pytest.fixture(scope="module")
def backend(tiny_llama_dir) -> HFBackend:
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", prefix_cache_mb=0)
    yield backend
    backend.close()


def decode(backend: HFBackend, groups: list[list[str]], prefixes: PrefixCache | None) -> list:
    """Decode groups of prompts greedily, each group joining the running batch one step later."""
    params = SamplingParams(max_tokens=1)
    batch = DecodeBatch(backend.model, params, set(), backend._decode, [], backend._pad, prefixes)
    got, order = {}, []
    with torch.inference_mode():
        for prompts in groups:
            rows = []
            for p in prompts:
                job = backend._prepare(ChatRequest.of(p, max_tokens=12))
                rows.append(_Row(job, job.prompt_ids, 12, []))
            order += rows
            batch.add(rows, *backend._padded(rows))
            for row, tokens, _ in batch.step():
                got[id(row)] = tokens
        while len(batch):
            for row, tokens, _ in batch.step():
                got[id(row)] = tokens
    return [got[id(r)] for r in order]


def test_rows_reusing_a_shared_start_decode_as_without_it(backend):
    task = "You are a careful assistant. Read the question, think step by step, then answer. "
    groups = [[task + "What is 2 + 2?", "Something unrelated entirely"],
              [task + "What is 3 + 5?", task + "Name a red fruit.", "x"],
              [task + "What is 2 + 2? Explain.", task + "What is 3 + 5?"]]
    prefixes = PrefixCache(min_tokens=8)
    assert decode(backend, groups, prefixes) == decode(backend, groups, None)
    assert prefixes.stats.hits >= 4 and prefixes.stats.tokens_reused > 4 * 20
    assert len(prefixes) == 6  # every distinct prompt was stored once


def test_prefix_cache_option(tiny_llama_dir):
    assert HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32").prefix_cache is not None
    with pytest.raises(ConfigError):
        HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", prefix_cache_mb=-1)


def test_seeded_requests_neither_reuse_nor_store(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32")
    backend.chat(ChatRequest.of("What is 2 + 2?", max_tokens=3))  # stores the template's start
    before = (backend.prefix_cache.stats.lookups, len(backend.prefix_cache))
    backend.chat(ChatRequest.of("What is 3 + 3?", max_tokens=3, temperature=1.0, seed=4))
    assert (backend.prefix_cache.stats.lookups, len(backend.prefix_cache)) == before
    backend.chat(ChatRequest.of("What is 3 + 3?", max_tokens=3))
    assert backend.prefix_cache.stats.hits == 1  # greedy ones do
    backend.close()
