"""The store's one transaction API: `transaction`, `store_error`, `upsert`, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from agentrt.core.errors import InvalidInputError, StoreError
from agentrt.store.engine import store_error, transaction, upsert
from agentrt.store.models import TraceTag
from agentrt.store.records import StepRecord

_TAGS = TraceTag.__table__


def _trace(store) -> str:
    return store.start_trace(problem="p", requested_mode="fast", model_id="m", backend="fake")


def test_transaction_commits_and_rolls_back(store):
    tid = _trace(store)
    with transaction(store.engine, "tag", write=True) as s:
        s.execute(_TAGS.insert().values(trace_id=tid, key="a", value="1"))
    with pytest.raises(RuntimeError):
        with transaction(store.engine, "tag", write=True) as s:
            s.execute(_TAGS.insert().values(trace_id=tid, key="b", value="2"))
            raise RuntimeError("boom")
    assert store.get_trace(tid).tags == {"a": "1"}


def test_integrity_errors_become_the_conflict_error_or_pass_through(store):
    tid = _trace(store)
    row = {"trace_id": tid, "key": "a", "value": "1"}
    with transaction(store.engine, "tag", write=True) as s:
        s.execute(_TAGS.insert().values(**row))
    with pytest.raises(StoreError, match=r"^cannot add a tag in somewhere: "):
        with transaction(store.engine, "add a tag", write=True, where="somewhere") as s:
            s.execute(_TAGS.insert().values(**row))
    with pytest.raises(InvalidInputError, match=r"^cannot add a tag: "):
        with transaction(store.engine, "add a tag", write=True, conflict=InvalidInputError) as s:
            s.execute(_TAGS.insert().values(**row))
    with pytest.raises(IntegrityError):
        with transaction(store.engine, "add a tag", write=True, conflict=None) as s:
            s.execute(_TAGS.insert().values(**row))


def test_agentrt_errors_pass_through_unchanged(store):
    with pytest.raises(InvalidInputError, match="^mine$"):
        with transaction(store.engine, "read"):
            raise InvalidInputError("mine")


def test_store_error_gives_the_first_line_of_the_driver_message():
    class Wrapped(Exception):
        orig = ValueError("\n  first line  \nSQL: SELECT secret\n")

    err = store_error(Wrapped(), "read traces", where="sqlite:///x.db")
    assert type(err) is StoreError and str(err) == "cannot read traces in sqlite:///x.db: first line"
    assert str(store_error(ValueError(""), "read")) == "cannot read: ValueError"


def test_upsert_keeps_or_overwrites_on_conflict(store):
    tid = _trace(store)
    keys = ["trace_id", "key"]
    dialect = store.engine.dialect.name
    with transaction(store.engine, "tag", write=True) as s:
        s.execute(upsert(dialect, _TAGS, keys), [{"trace_id": tid, "key": "a", "value": "1"}])
        s.execute(upsert(dialect, _TAGS, keys), [{"trace_id": tid, "key": "a", "value": "2"}])
    assert store.get_trace(tid).tags == {"a": "1"}
    with transaction(store.engine, "tag", write=True) as s:
        s.execute(upsert(dialect, _TAGS, keys, update=["value"]),
                  [{"trace_id": tid, "key": "a", "value": "3"},
                   {"trace_id": tid, "key": "b", "value": "4"}])
    assert store.get_trace(tid).tags == {"a": "3", "b": "4"}


def test_the_store_transaction_refuses_a_closed_store(db_url):
    from agentrt.store import TraceStore

    store = TraceStore(db_url)
    with store.transaction("count tags") as s:
        assert list(s.scalars(select(TraceTag))) == []
    store.close()
    with pytest.raises(StoreError, match="closed"):
        with store.transaction("count tags"):
            pass


def test_in_memory_transactions_share_one_lock_per_engine():
    from agentrt.store import TraceStore

    store = TraceStore("sqlite://")
    try:
        tid = _trace(store)
        errors: list[BaseException] = []

        def work(i: int) -> None:
            try:
                for j in range(20):
                    with transaction(store.engine, "tag", write=True) as s:
                        s.execute(_TAGS.insert().values(trace_id=tid, key=f"{i}-{j}", value="x"))
                    store.add_step(tid, StepRecord(kind="llm", name=f"s{i}-{j}"))
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        trace = store.get_trace(tid)
        assert len(trace.tags) == 80 and len(trace.steps) == 80
    finally:
        store.close()
