"""`Runtime.solve` and settings on input a caller may give them: the wrong types, options that
no workflow reads, text no tokenizer or database takes, limits past what the tools and calls
accept. Each is refused with agentrt's own error before a trace starts, or cleaned so that the
model sees exactly what the trace keeps. The scripted backend, a real SQLite store.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agentrt.core.config import default_home, load_settings
from agentrt.core.errors import ConfigError, InvalidInputError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime


def make_runtime(store, backend=None, **settings) -> Runtime:
    return Runtime(load_settings(backend="fake", model="fake", **settings),
                   backend=backend or FakeBackend(default="Final answer: 4"), store=store,
                   tools={})


@pytest.mark.parametrize("problem, message", [
    (b"What is 2+2?", "problem must be a string, not bytes"),
    (None, "problem must be a string, not NoneType"),
    (4, "problem must be a string, not int"),
    ("\x00\x00 \n", "problem is empty"),
])
def test_a_problem_that_is_not_text_is_named_as_such(store, problem, message):
    with pytest.raises(InvalidInputError, match=message):
        make_runtime(store).solve(problem, mode="fast")
    assert store.count_traces() == 0


def test_nul_and_lone_surrogates_reach_the_model_as_the_trace_keeps_them(store):
    backend = FakeBackend(default="Final answer: 4")
    sol = make_runtime(store, backend).solve("What is\x00 2+2? \udcff", mode="fast",
                                             context="earlier \ud800")
    kept = store.get_trace(sol.trace_id).problem
    assert kept == "What is\ufffd 2+2? \ufffd"
    sent = "\n".join(m.content for m in backend.requests[0].messages)
    assert kept in sent and "earlier \ufffd" in sent
    assert not any("\ud800" <= c <= "\udfff" or c == "\x00" for c in sent)


@pytest.mark.parametrize("mode, options, message", [
    ("fast", {"temprature": 0.5}, "unknown solve option.* temprature"),
    ("slow", {"max_tokens": 9}, "unknown solve option.* max_tokens"),
    ("fast", {"rounds": 2}, "mode 'team' also takes agents, rounds"),
    ("fast", {"temperature": "hot"}, "temperature must be a number from 0 to 2"),
    ("fast", {"temperature": -1}, "temperature must be a number from 0 to 2"),
    ("auto", {"temperature": float("nan")}, "temperature must be a number from 0 to 2"),
    ("slow", {"seed": "7"}, "seed must be an integer"),
    ("fast", {"tags": {"run": 1}}, "tag 'run' must be a string"),
    ("fast", {"tags": ["run"]}, "tags must be a mapping"),
    ("fast", {"context": b"earlier"}, "context must be a string, not bytes"),
    ("fast", {"on_step": "print"}, "on_step must be callable"),
    ("fast", {"cancel": True}, "cancel must be a threading.Event"),
])
def test_unusable_options_are_refused_before_a_trace_starts(store, mode, options, message):
    with pytest.raises(InvalidInputError, match=message):
        make_runtime(store).solve("What is 2+2?", mode=mode, **options)
    assert store.count_traces() == 0


def test_usable_options_still_solve_and_unset_ones_are_left_out(store):
    cancel = threading.Event()
    sol = make_runtime(store).solve("What is 2+2?", mode="fast", temperature=0.5, seed=3,
                                    rounds=None, cancel=cancel, on_step=lambda step: None)
    assert (sol.answer, sol.status) == ("4", "ok")
    assert store.get_trace(sol.trace_id).meta["options"] == {"temperature": 0.5, "seed": 3}


def test_settings_of_the_wrong_type_are_a_config_error(store):
    with pytest.raises(ConfigError, match="settings must be a Settings"):
        Runtime({"backend": "fake"}, store=store)


@pytest.mark.parametrize("limit, value", [
    ("max_tokens_per_call", 40_000),  # past what one call may ask for
    ("tool_timeout_s", 61),           # past what the python tool accepts
    ("tool_memory_mb", 8192),
])
def test_limits_no_call_or_tool_would_accept_are_refused(monkeypatch, limit, value):
    with pytest.raises(ConfigError, match=f"limits.{limit}"):
        load_settings(backend="fake", model="fake", limits={limit: value})
    monkeypatch.setenv(f"AGENTRT_LIMIT_{limit.upper()}", str(value))
    with pytest.raises(ConfigError, match=f"limits.{limit}"):
        load_settings(backend="fake", model="fake")


def test_an_empty_home_variable_means_the_default_home(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTRT_HOME", "")
    home = load_settings(backend="fake", model="fake").home
    assert home == default_home() and home != Path(".")
