"""Conformance of the legacy /v1/completions endpoint with the official `openai` client."""

from __future__ import annotations

import pytest
from fake_server_app import MODEL, WORDS

FIRST4 = " ".join(WORDS.split()[:4])


def test_text_completion_defaults_to_16_tokens(server):
    resp = server.client().completions.create(model=MODEL, prompt="Say the words.")
    assert resp.object == "text_completion" and resp.id.startswith("cmpl-")
    (choice,) = resp.choices
    assert choice.text == WORDS and choice.index == 0  # exactly 16 words: OpenAI's default
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens


def test_prompt_list_and_n_number_choices_prompt_by_prompt(server):
    resp = server.client().completions.create(model=MODEL, prompt=["a", "b", "c"], n=2,
                                              max_tokens=4)
    assert [c.index for c in resp.choices] == list(range(6))
    assert all(c.text == FIRST4 and c.finish_reason == "length" for c in resp.choices)
    assert resp.usage.completion_tokens == 6 * 4


def test_echo_and_stop(server):
    resp = server.client().completions.create(model=MODEL, prompt="Words: ", echo=True,
                                              stop=["charlie"])
    assert resp.choices[0].text == "Words: alpha bravo "


@pytest.mark.parametrize("n", [1, 2])
def test_streaming_equals_non_streaming(server, n):
    client = server.client()
    kw = dict(model=MODEL, prompt=["x", "y"], n=n, max_tokens=5, temperature=0)
    full = client.completions.create(**kw)
    chunks = list(client.completions.create(stream=True, stream_options={"include_usage": True},
                                            **kw))
    texts: dict[int, str] = {}
    finish: dict[int, list] = {}
    for ch in chunks[:-1]:
        (c,) = ch.choices
        texts[c.index] = texts.get(c.index, "") + c.text
        if c.finish_reason:
            finish.setdefault(c.index, []).append(c.finish_reason)
    assert texts == {c.index: c.text for c in full.choices}
    assert finish == {c.index: [c.finish_reason] for c in full.choices}
    assert chunks[-1].choices == [] and chunks[-1].usage == full.usage


def test_solver_model_on_the_legacy_endpoint(server):
    raw = server.client().completions.with_raw_response.create(model="agentrt-fast",
                                                               prompt="What is 17*23+5?")
    resp = raw.parse()
    assert resp.choices[0].text == "396"
    assert resp.id == "cmpl-" + raw.headers["x-agentrt-trace-id"]
