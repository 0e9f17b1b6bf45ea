"""JSON-schema grammar compilation and its cache."""

from __future__ import annotations

import pytest

from agentrt.core.errors import BackendRequestError
from agentrt.llm.grammar import GrammarCache, schema_key


def test_schema_key_ignores_key_order():
    a = {"type": "object", "properties": {"x": {"type": "integer"}}}
    b = {"properties": {"x": {"type": "integer"}}, "type": "object"}
    assert schema_key(a) == schema_key(b) != schema_key({"type": "string"})


@pytest.fixture(scope="module")
def cache(tiny_llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    return GrammarCache(tok, vocab_size=len(tok), max_entries=2)


def test_compiles_once_per_schema_and_evicts_oldest(cache):
    s1, s2, s3 = ({"type": "object", "properties": {k: {"type": "boolean"}}} for k in "abc")
    first = cache.compile(s1)
    assert cache.compile(dict(reversed(list(s1.items())))) is first
    cache.compile(s2)
    cache.compile(s3)  # evicts s1
    assert cache.compiles == 3
    cache.compile(s1)
    assert cache.compiles == 4


def test_bad_schema_is_a_request_error(cache):
    with pytest.raises(BackendRequestError) as info:
        cache.compile({"type": "not-a-type"})
    assert info.value.status == 400
