"""General chat data: everyday requests (never the held-out ones) and the base's own replies."""

from __future__ import annotations

import json

import pytest

from agentrt.core.errors import InvalidInputError
from agentrt.data_synth.compile.mix import read_chat_examples
from agentrt.data_synth.general import (HELDOUT_REQUESTS, _complete_sentences, everyday_requests,
                                general_examples)


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def test_everyday_requests_are_distinct_seeded_and_never_held_out():
    requests = everyday_requests(500, seed=0)
    assert len(requests) == len({_norm(r) for r in requests}) == 500
    assert requests == everyday_requests(500, seed=0)
    assert requests[:20] != everyday_requests(20, seed=1)
    assert not {_norm(r) for r in requests} & {_norm(r) for r in HELDOUT_REQUESTS}
    starts = {r.split()[0] for r in requests}
    assert len(starts) >= 8  # many kinds of request, not one template
    with pytest.raises(InvalidInputError, match="distinct everyday requests"):
        everyday_requests(100_000)


def test_a_reply_cut_at_the_limit_keeps_its_complete_sentences():
    assert _complete_sentences("It is blue. Light scatters. Short waves sca") == \
        "It is blue. Light scatters."
    assert _complete_sentences("Roses are red\nViolets are bl") == "Roses are red"
    assert _complete_sentences("no sentence ends here") is None


def test_general_examples_are_the_models_own_replies_cached(tmp_path, tiny_llama_dir):
    first = general_examples(tiny_llama_dir, 6, cache_dir=tmp_path, max_new_tokens=12)
    again = general_examples(tiny_llama_dir, 6, cache_dir=tmp_path, max_new_tokens=12)
    assert first == again and first.parent == tmp_path
    rows = [json.loads(line) for line in first.read_text().splitlines()]
    requests = everyday_requests(6)
    assert len(rows) <= 6
    for row in rows:
        user, reply = row["messages"]
        assert user["content"] in requests and reply["role"] == "assistant" and reply["content"]
    if rows:
        assert read_chat_examples(first) == [r["messages"] for r in rows]


def test_chat_rows_with_unicode_line_separators_read_back_whole(tmp_path):
    path = tmp_path / "chat.jsonl"
    reply = "First line\u2028second\u0085third\x1cfourth"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                             {"role": "assistant", "content": reply}]},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_chat_examples(path)[0][1]["content"] == reply
