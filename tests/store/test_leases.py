"""Leases of running traces: owners, heartbeats, traces nobody runs, takeover, superseded steps,
and the fence: only the process that runs a trace writes to it.

Real stores on SQLite and the local PostgreSQL; owners of other processes and hosts are written
into the lease columns the way those processes would write them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from agentrt.core.errors import NotFoundError, StoreError
from agentrt.store import StepRecord, TraceStore
from agentrt.store.lease import Owner, orphaned
from agentrt.store.models import Trace
from agentrt.store.records import utcnow


def _start(store, **kw):
    return store.start_trace(problem="2+2?", requested_mode="slow", model_id="m", backend="fake",
                             **kw)


def _set_lease(store, trace_id, owner, heartbeat_at):
    with store.engine.begin() as conn:
        conn.execute(update(Trace.__table__).where(Trace.__table__.c.id == trace_id)
                     .values(owner=owner, heartbeat_at=heartbeat_at))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_started_trace_is_owned_by_this_process(store):
    tid = _start(store)
    trace = store.get_trace(tid)
    me = Owner.current()
    assert trace.owner == me.key and Owner.parse(trace.owner) == me
    assert me.pid == os.getpid() and not me.gone()
    assert (trace.status, trace.orphaned) == ("running", False)
    assert utcnow() - trace.heartbeat_at < timedelta(seconds=30)
    store.finish_trace(tid, answer="4", status="ok", mode="fast")
    assert store.get_trace(tid).status == "ok"


def test_the_heartbeat_keeps_the_lease_until_the_store_closes(db_url):
    store = TraceStore(db_url, lease_s=0.8)  # a beat every 0.2 s
    tid = _start(store)
    first = store.get_trace(tid).heartbeat_at
    time.sleep(0.7)
    beat = store.get_trace(tid)
    assert beat.heartbeat_at > first and beat.status == "running"
    store.close()
    reader = TraceStore(db_url, lease_s=0.8)
    try:
        last = reader.get_trace(tid).heartbeat_at
        time.sleep(1.0)  # nobody beats now: the lease runs out although this process lives
        trace = reader.get_trace(tid)
        assert trace.heartbeat_at == last
        assert (trace.status, trace.orphaned) == ("interrupted", True)
    finally:
        reader.close()
    with pytest.raises(ValueError, match="lease_s"):
        TraceStore(db_url, lease_s=0)


def test_who_counts_as_gone(store):
    me, now = Owner.current(), utcnow()
    fresh, stale = now, now - timedelta(seconds=120)
    elsewhere = Owner("other-host/1", me.pid, me.started, "t").key
    cases = {
        "live here": (me.key, fresh, False),
        "other host, fresh heartbeat": (elsewhere, fresh, False),
        "other host, lease expired": (elsewhere, stale, True),
        "dead pid here": (Owner(me.host, _dead_pid(), "1", "t").key, fresh, True),
        "pid reused by another process": (Owner(me.host, me.pid, "1", "t").key, fresh, True),
        "no owner (before leases)": (None, None, True),
    }
    for name, (owner, beat, gone) in cases.items():
        assert orphaned(owner, beat, now=now, lease_s=60) is gone, name
        tid = _start(store)
        _set_lease(store, tid, owner, beat)
        trace = store.get_trace(tid)
        assert trace.orphaned is gone, name
        assert trace.status == ("interrupted" if gone else "running"), name


def test_interrupted_lists_traces_nobody_runs(store):
    live, dead, stopped, done = (_start(store) for _ in range(4))
    _set_lease(store, dead, Owner(Owner.current().host, _dead_pid(), "1", "t").key, utcnow())
    store.finish_trace(stopped, answer=None, status="interrupted", mode=None)
    store.finish_trace(done, answer="4", status="ok", mode="slow")
    assert {t.id for t in store.list_traces(status="interrupted")} == {dead, stopped}
    assert store.count_traces(status="interrupted") == 2
    assert [t.id for t in store.list_traces(status="running")] == [live]
    assert store.count_traces(status="running") == 1
    shown = {t.id: t.status for t in store.list_traces()}
    assert shown == {live: "running", dead: "interrupted", stopped: "interrupted", done: "ok"}


def test_claim_is_a_compare_and_set(store):
    tid = _start(store)
    _set_lease(store, tid, Owner("far-away/1", 7, "1", "t").key, utcnow() - timedelta(hours=1))
    seen = store.get_trace(tid)
    assert seen.orphaned
    assert store.claim_trace(seen) is True
    assert store.claim_trace(seen) is False  # it changed since it was read
    now = store.get_trace(tid)
    assert (now.status, now.owner, now.orphaned) == ("running", Owner.current().key, False)
    store.finish_trace(tid, answer=None, status="error", mode=None, error="boom")
    failed = store.get_trace(tid)
    assert store.claim_trace(failed) is True  # a stopped trace is taken over the same way
    store.finish_trace(tid, answer="4", status="ok", mode="slow")
    assert store.claim_trace(failed) is False  # it finished since it was read
    assert store.get_trace(tid).status == "ok"


def test_only_one_of_several_processes_takes_a_trace_over(store, db_url, spawn, tmp_path):
    tid = _start(store)
    _set_lease(store, tid, Owner(Owner.current().host, _dead_pid(), "1", "t").key, utcnow())
    start, go, wait = spawn
    for worker in ("c1", "c2", "c3", "c4"):
        start(db_url, "claim", worker, n_traces=tid, n_steps=0)
    go()
    wait()
    won = sorted((tmp_path / "sync" / f"claimed-{w}").read_text() for w in ("c1", "c2", "c3", "c4"))
    assert won == ["0", "0", "0", "1"]
    assert Owner.parse(store.get_trace(tid).owner).pid != os.getpid()


def test_superseded_steps_are_left_out_unless_asked_for(store):
    tid = _start(store)
    ids = store.add_steps(tid, [StepRecord(kind="llm", name=f"s{i}", task=f"node:{i}",
                                           prompt_tokens=i) for i in range(3)])
    assert store.supersede_steps(tid, [ids[0], ids[2]]) == 2
    assert store.supersede_steps(tid, [ids[0]]) == 0  # already superseded
    assert [s.name for s in store.get_trace(tid).steps] == ["s1"]
    every = store.get_trace(tid, superseded=True).steps
    assert [(s.name, s.superseded, s.task) for s in every] == [
        ("s0", True, "node:0"), ("s1", False, "node:1"), ("s2", True, "node:2")]


def _writes_refused(store, tid, step_id, match):
    """Every write that belongs to a run of `tid` raises StoreError matching `match`."""
    with pytest.raises(StoreError, match=match):
        store.add_steps(tid, [StepRecord(kind="llm", name="late")])
    with pytest.raises(StoreError, match=match):
        store.finish_trace(tid, answer="111", status="ok", mode="slow")
    with pytest.raises(StoreError, match=match):
        store.supersede_steps(tid, [step_id])


def test_a_process_that_lost_its_trace_cannot_write_to_it(store, db_url, spawn, tmp_path):
    tid = _start(store)
    [first] = store.add_steps(tid, [StepRecord(kind="llm", name="before", task="n:1")])
    me = Owner.current().key
    _set_lease(store, tid, me, utcnow() - timedelta(hours=1))  # this process stalled
    start, go, wait = spawn
    start(db_url, "claim", "resumer", n_traces=tid, n_steps=0)  # another process takes it over
    go()
    wait()
    assert (tmp_path / "sync" / "claimed-resumer").read_text() == "1"
    taken = store.get_trace(tid, superseded=True)
    assert taken.owner not in (me, None)  # (that process has exited since: to take it back,
    assert taken.orphaned                 # this one would have to claim it in turn)

    _writes_refused(store, tid, first, "owned by another process")
    now = store.get_trace(tid, superseded=True)  # nothing changed
    assert [(s.name, s.superseded) for s in now.steps] == [("before", False)]
    assert (now.answer, now.owner, now.finished_at) == (None, taken.owner, None)


def test_a_finished_trace_takes_no_more_writes(store):
    tid = _start(store)
    [first] = store.add_steps(tid, [StepRecord(kind="llm", name="s", task="n:1")])
    store.finish_trace(tid, answer="4", status="ok", mode="slow", llm_calls=1)
    _writes_refused(store, tid, first, "already finished with status 'ok'")
    trace = store.get_trace(tid, superseded=True)
    assert (trace.status, trace.answer, trace.llm_calls) == ("ok", "4", 1)
    assert [(s.name, s.superseded) for s in trace.steps] == [("s", False)]
    with pytest.raises(NotFoundError):
        store.add_steps("0" * 32, [StepRecord(kind="llm", name="x")])


def test_threads_that_ask_at_once_share_one_identity():
    code = textwrap.dedent("""
        import threading
        from agentrt.store.lease import Owner
        barrier, keys = threading.Barrier(16), []
        def ask():
            barrier.wait()
            keys.append(Owner.current().key)
        threads = [threading.Thread(target=ask) for _ in range(16)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(len(keys), len(set(keys)))
    """)
    for _ in range(3):  # a fresh process each time: nobody has asked before the threads
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, check=True).stdout.split()
        assert out == ["16", "1"]
