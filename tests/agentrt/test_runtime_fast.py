"""solve(mode="fast") end to end on the scripted backend and a real SQLite store."""

import threading

import pytest

from agentrt.core.config import Limits, load_settings
from agentrt.core.errors import BackendError, ConfigError, InvalidInputError
from agentrt.llm.fake import FakeBackend
from agentrt.runtime import Runtime


def make_runtime(store, backend, **limits):
    settings = load_settings(backend="fake", model="fake", limits=Limits(**limits))
    return Runtime(settings, backend=backend, store=store)


def scripted():
    return FakeBackend(rules=[
        (r"Proposed (final )?answer", '{"verdict": "yes", "reason": "391 + 5 = 396"}'),
        (r"17\*23", "17*23 = 391. Adding 5 gives 396.\nFinal answer: 396"),
    ])


def test_fast_solve_records_answer_and_check(store):
    rt = make_runtime(store, scripted())
    sol = rt.solve("What is 17*23+5?", mode="fast")
    assert sol.answer == "396"
    assert sol.verdict == "yes"
    assert sol.mode == "fast" and sol.status == "ok"
    assert sol.llm_calls == 2
    assert sol.usage.completion_tokens > 0

    trace = store.get_trace(sol.trace_id)
    assert trace.answer == "396" and trace.status == "ok"
    names = [s.name for s in trace.steps]
    assert names == ["fast_answer", "extract_answer", "fast_check", "verdict"]
    llm_steps = [s for s in trace.steps if s.kind == "llm"]
    assert sum(s.completion_tokens for s in llm_steps) == sol.usage.completion_tokens
    assert all(s.template and s.template_hash for s in llm_steps)
    # the exact messages sent are stored, so training data can be rebuilt from them
    assert "17*23+5" in llm_steps[0].inputs["messages"][-1]["content"]


def test_check_says_no(store):
    backend = FakeBackend(rules=[(r"Proposed (final )?answer", "That is wrong.\nVerdict: no"),
                                 (r".*", "Final answer: 7")])
    sol = make_runtime(store, backend).solve("What is 2+2?", mode="fast")
    assert (sol.answer, sol.verdict) == ("7", "no")


def test_structured_check_sends_schema(store):
    backend = scripted()
    backend.supports_json_schema = True
    make_runtime(store, backend).solve("What is 17*23+5?", mode="fast")
    check_req = backend.requests[-1]
    assert check_req.json_schema is not None
    assert check_req.json_schema["properties"]["verdict"]["enum"] == ["yes", "no", "unknown"]


def test_bad_input_and_modes(store):
    rt = make_runtime(store, scripted())
    for bad in ("", "   "):
        with pytest.raises(InvalidInputError):
            rt.solve(bad)
    with pytest.raises(ConfigError, match="unknown mode"):
        rt.solve("x", mode="medium")
    rt_small = make_runtime(store, scripted(), max_problem_chars=10)
    with pytest.raises(InvalidInputError, match="limit"):
        rt_small.solve("x" * 11)
    assert store.count_traces() == 0  # rejected input leaves no trace


def test_budget_stops_with_partial_answer(store):
    rt = make_runtime(store, scripted(), max_llm_calls=1)
    sol = rt.solve("What is 17*23+5?", mode="fast")
    assert sol.status == "budget_exceeded:llm_calls"
    assert sol.answer == "396"  # the answer found before the budget ran out
    assert store.get_trace(sol.trace_id).status == "budget_exceeded:llm_calls"


def test_backend_error_keeps_trace(store):
    backend = FakeBackend(default=None)  # no reply: raises BackendError
    rt = make_runtime(store, backend)
    with pytest.raises(BackendError):
        rt.solve("What is 2+2?", mode="fast")
    [trace] = store.list_traces()
    full = store.get_trace(trace.id)
    assert full.status == "error" and "backend_error" in full.error
    assert full.steps[0].status == "error"


def test_concurrent_solves_keep_every_trace(store):
    rt = make_runtime(store, scripted())
    ids, errors = [], []

    def work():
        try:
            for _ in range(5):
                ids.append(rt.solve("What is 17*23+5?", mode="fast").trace_id)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(set(ids)) == 30
    assert store.count_traces() == 30
    assert all(len(store.get_trace(i).steps) == 4 for i in ids)
