"""TraceStore behaviour, run against a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from agentrt.core.errors import NotFoundError, StoreError
from agentrt.store import StepRecord, TraceRecord, TraceStore
from agentrt.core.types import Usage


def _start(store: TraceStore, **kw) -> str:
    args = dict(problem="What is 17*23+5?", requested_mode="auto", model_id="smollm2-135m", backend="fake")
    args.update(kw)
    return store.start_trace(**args)


def test_round_trip_trace_and_steps(store):
    tid = _start(store, tags={"dataset": "arith", "synthetic": "yes"}, meta={"route": "fast"})
    assert len(tid) == 32 and int(tid, 16) >= 0
    running = store.get_trace(tid)
    assert running.status == "running" and running.mode is None and running.finished_at is None
    assert running.answer is None and running.steps == []

    started = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone(timedelta(hours=2)))
    first = store.add_step(
        tid,
        StepRecord(
            kind="llm", name="answer", node="fast", round=1, inputs={"prompt": "17*23+5"},
            outputs={"text": "396"}, prompt_tokens=12, completion_tokens=7, latency_s=0.25,
            template="fast/answer.jinja", template_hash="ab" * 32, started_at=started,
        ),
    )
    more = store.add_steps(
        tid,
        [
            StepRecord(kind="tool", name="python", status="error", error="ZeroDivisionError"),
            StepRecord(kind="decision", name="check", outputs={"verdict": "yes"}),
        ],
    )
    assert more == sorted(more) and more[0] > first
    store.finish_trace(
        tid, answer="396", status="ok", mode="fast", verdict="yes",
        usage=Usage(prompt_tokens=12, completion_tokens=7), latency_s=1.5, llm_calls=2,
        tool_runs=1, meta={"checked": True},
    )

    t = store.get_trace(tid)
    assert isinstance(t, TraceRecord)
    assert (t.answer, t.status, t.mode, t.verdict, t.requested_mode) == ("396", "ok", "fast", "yes", "auto")
    assert (t.model_id, t.backend, t.problem) == ("smollm2-135m", "fake", "What is 17*23+5?")
    assert t.usage == Usage(prompt_tokens=12, completion_tokens=7)
    assert (t.llm_calls, t.tool_runs, t.latency_s, t.error) == (2, 1, 1.5, None)
    assert t.meta == {"route": "fast", "checked": True}
    assert t.tags == {"dataset": "arith", "synthetic": "yes"}
    assert t.created_at.tzinfo == timezone.utc and t.finished_at >= t.created_at
    assert [s.id for s in t.steps] == [first, *more]
    s0 = t.steps[0]
    assert (s0.kind, s0.name, s0.node, s0.round, s0.status) == ("llm", "answer", "fast", 1, "ok")
    assert s0.inputs == {"prompt": "17*23+5"} and s0.outputs == {"text": "396"}
    assert (s0.prompt_tokens, s0.completion_tokens, s0.latency_s) == (12, 7, 0.25)
    assert (s0.template, s0.template_hash) == ("fast/answer.jinja", "ab" * 32)
    assert s0.started_at == started and s0.started_at.tzinfo == timezone.utc
    assert (t.steps[1].status, t.steps[1].error) == ("error", "ZeroDivisionError")
    assert store.get_trace(tid, steps=False).steps == []


def test_finish_merges_meta_and_error_status(store):
    tid = _start(store, meta={"a": 1, "b": {"x": 1}})
    store.finish_trace(tid, answer=None, status="budget_exceeded:tokens", mode="slow",
                       error="token budget 60000 exceeded", meta={"b": {"y": 2}, "c": 3})
    t = store.get_trace(tid)
    assert t.status == "budget_exceeded:tokens" and t.answer is None
    assert t.error == "token budget 60000 exceeded"
    assert t.meta == {"a": 1, "b": {"y": 2}, "c": 3}  # top-level merge


def test_caller_chosen_id_and_duplicates(store):
    chosen = uuid.uuid4()
    tid = _start(store, trace_id=str(chosen))  # dashed form is normalized
    assert tid == chosen.hex
    with pytest.raises(StoreError, match="exists"):
        _start(store, trace_id=chosen.hex)
    with pytest.raises(ValueError, match="uuid"):
        _start(store, trace_id="not-a-uuid")


def test_prefix_lookup(store):
    a = _start(store, trace_id="abcdef01" + "0" * 24)
    b = _start(store, trace_id="abcdef02" + "0" * 24)
    assert store.get_trace("abcdef01").id == a
    assert store.get_trace("ABCDEF02").id == b  # case-insensitive
    assert store.get_trace(str(uuid.UUID(a))).id == a  # dashed full id
    with pytest.raises(NotFoundError, match="ambiguous") as err:
        store.get_trace("abcdef")
    assert sorted(err.value.details["candidates"]) == sorted([a, b])
    with pytest.raises(NotFoundError, match="6 to 31"):
        store.get_trace("abcde")
    with pytest.raises(NotFoundError, match="starts with"):
        store.get_trace("abcdef09")
    with pytest.raises(NotFoundError):
        store.get_trace("abcdef%")  # LIKE wildcards are not accepted as ids
    with pytest.raises(NotFoundError):
        store.get_trace("f" * 32)


def test_unknown_trace_raises_not_found(store):
    missing = uuid.uuid4().hex
    with pytest.raises(NotFoundError):
        store.add_step(missing, StepRecord(kind="llm", name="x"))
    with pytest.raises(NotFoundError):
        store.finish_trace(missing, answer="1", status="ok", mode="fast")
    with pytest.raises(NotFoundError):
        store.tag(missing, a="b")
    with pytest.raises(NotFoundError):
        store.add_step("nonsense", StepRecord(kind="llm", name="x"))


def test_filters_tags_paging_and_counts(store):
    ids = []
    for i in range(6):
        tid = _start(store, tags={"run": "r1" if i < 4 else "r2", "parity": str(i % 2)})
        ids.append(tid)
        if i % 3 == 0:
            store.finish_trace(tid, answer="x", status="ok", mode="fast")
        elif i % 3 == 1:
            store.finish_trace(tid, answer=None, status="error", mode="slow", error="boom")
    newest_first = list(reversed(ids))
    assert [t.id for t in store.list_traces()] == newest_first
    assert [t.id for t in store.list_traces(limit=2, offset=1)] == newest_first[1:3]
    assert store.list_traces(limit=0) == []
    assert all(t.steps == [] for t in store.list_traces())

    assert {t.id for t in store.list_traces(status="ok")} == {ids[0], ids[3]}
    assert {t.id for t in store.list_traces(status="running")} == {ids[2], ids[5]}
    assert {t.id for t in store.list_traces(mode="slow")} == {ids[1], ids[4]}
    assert {t.id for t in store.list_traces(tags={"run": "r1"})} == set(ids[:4])
    both = store.list_traces(tags={"run": "r1", "parity": "1"})
    assert {t.id for t in both} == {ids[1], ids[3]}
    assert both[0].tags == {"run": "r1", "parity": "1"}
    assert store.list_traces(tags={"run": "r3"}) == []

    assert store.count_traces() == 6
    assert store.count_traces(status="ok") == 2
    assert store.count_traces(tags={"run": "r1"}, mode="slow") == 1
    assert store.count_traces(status="ok", tags={"parity": "1"}) == 1

    cut = store.get_trace(ids[3]).created_at
    assert {t.id for t in store.list_traces(since=cut)} == set(ids[3:])
    assert store.count_traces(since=cut.replace(tzinfo=None)) == 3  # naive means UTC
    assert store.count_traces(since=datetime.now(timezone.utc) + timedelta(hours=1)) == 0


def test_tag_sets_and_overwrites(store):
    tid = _start(store, tags={"run": "r1"})
    store.tag(tid, run="r2", eval="gsm8k")
    store.tag(tid)  # nothing to do
    assert store.get_trace(tid).tags == {"run": "r2", "eval": "gsm8k"}
    assert store.count_traces(tags={"run": "r1"}) == 0
    assert store.count_traces(tags={"run": "r2", "eval": "gsm8k"}) == 1
    with pytest.raises(ValueError):
        store.tag(tid, run=3)


def test_odd_json_values_are_kept_not_rejected(store):
    class Odd:
        def __str__(self):
            return "odd!"

    tid = _start(store, problem="nul\x00 inside", meta={"nan": float("nan"), "when": datetime(2025, 1, 1)})
    store.add_step(
        tid,
        StepRecord(
            kind="tool", name="python",
            inputs={"bytes": b"\x00\xff", "set": {3, 1, 2}, "tuple": (1, "a"), 7: "int key",
                    "obj": Odd(), "inf": float("-inf"), "nested": [{"u": Usage(prompt_tokens=1)}]},
            outputs={"text": "lone \ud800 surrogate and nul \x00", "exc": ValueError("bad")},
            error="err\x00or",
        ),
    )
    t = store.get_trace(tid)
    assert t.problem == "nul\ufffd inside"
    assert t.meta == {"nan": "nan", "when": "2025-01-01 00:00:00"}
    step = t.steps[0]
    assert step.inputs == {
        "bytes": "b'\\x00\\xff'", "set": [1, 2, 3], "tuple": [1, "a"], "7": "int key",
        "obj": "odd!", "inf": "-inf",
        "nested": [{"u": {"prompt_tokens": 1, "completion_tokens": 0}}],
    }
    assert step.outputs == {"text": "lone \ufffd surrogate and nul \ufffd", "exc": "bad"}
    assert step.error == "err\ufffdor"


def test_bad_arguments_are_value_errors(store):
    with pytest.raises(ValueError, match="requested_mode"):
        _start(store, requested_mode="x" * 17)
    with pytest.raises(ValueError, match="backend"):
        _start(store, backend="")
    with pytest.raises(ValueError, match="meta"):
        _start(store, meta=["not", "a", "dict"])
    with pytest.raises(ValueError, match="tag"):
        _start(store, tags={"k": 1})
    tid = _start(store)
    with pytest.raises(ValueError, match="latency_s"):
        store.finish_trace(tid, answer="1", status="ok", mode="fast", latency_s=-1)
    with pytest.raises(ValueError, match="usage"):
        store.finish_trace(tid, answer="1", status="ok", mode="fast", usage={"prompt_tokens": 1})
    with pytest.raises(ValueError, match="status"):
        store.finish_trace(tid, answer="1", status="", mode="fast")
    with pytest.raises(ValueError, match="limit"):
        store.list_traces(limit=-1)
    with pytest.raises(ValueError):  # pydantic ValidationError: a bad step writes nothing
        store.add_steps(tid, [StepRecord(kind="llm", name="ok"), {"kind": "nope", "name": "x"}])
    assert store.get_trace(tid).steps == []
    assert store.get_trace(tid).status == "running"


def test_closed_store_refuses_work(db_url):
    store = TraceStore(db_url)
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count_traces()


def test_reopen_keeps_data(db_url):
    with TraceStore(db_url) as first:
        tid = _start(first)
        first.add_step(tid, StepRecord(kind="stage", name="plan"))
    with TraceStore(db_url) as second:
        assert [s.name for s in second.get_trace(tid).steps] == ["plan"]
