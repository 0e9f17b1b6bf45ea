"""The scripted fake backend that ships in the package."""

from __future__ import annotations

import threading

import pytest

from agentrt.core.errors import BackendError
from agentrt.llm.base import ChatBackend, load_backend, stream_by_chat
from agentrt.llm.fake import FakeBackend
from agentrt.core.types import ChatRequest


def test_rules_win_over_script_and_script_over_default():
    b = FakeBackend(script=["first", "second"], rules=[(r"capital", "Paris")], default="fallback")
    assert isinstance(b, ChatBackend)
    assert b.chat(ChatRequest.of("What is the capital?")).text == "Paris"
    assert [b.chat(ChatRequest.of("hi")).text for _ in range(3)] == ["first", "second", "fallback"]
    assert len(b.requests) == 4


def test_callable_replies_and_exhausted_script():
    b = FakeBackend(script=[lambda r: r.messages[-1].content.upper()], default=None)
    assert b.chat(ChatRequest.of("shout")).text == "SHOUT"
    with pytest.raises(BackendError):
        b.chat(ChatRequest.of("again"))


def test_stop_max_tokens_n_and_usage():
    b = FakeBackend(default="one two three four five")
    cut = b.chat(ChatRequest.of("q", stop=["three"]))
    assert cut.text == "one two " and cut.choices[0].finish_reason == "stop"
    short = b.chat(ChatRequest.of("a b", max_tokens=2, n=2))
    assert [c.text for c in short.choices] == ["one two", "one two"]
    assert {c.finish_reason for c in short.choices} == {"length"}
    assert (short.usage.prompt_tokens, short.usage.completion_tokens) == (3, 4)
    assert b.count_tokens("a b c") == 3


def test_batch_stream_and_registry():
    b = load_backend("fake", "my-fake")
    assert b.model_id == "my-fake"
    assert [r.text for r in b.chat_batch([ChatRequest.of("a"), ChatRequest.of("b")])] == ["42", "42"]
    words = FakeBackend(default="alpha beta gamma")
    assert list(words.stream(ChatRequest.of("x"))) == ["alpha", " beta", " gamma"]
    assert list(stream_by_chat(words, ChatRequest.of("x"))) == ["alpha beta gamma"]


def test_script_is_consumed_once_across_threads():
    b = FakeBackend(script=[str(i) for i in range(50)], default=None)
    got: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        for _ in range(10):
            text = b.chat(ChatRequest.of("x")).text
            with lock:
                got.append(text)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got, key=int) == [str(i) for i in range(50)]
