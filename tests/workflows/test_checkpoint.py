"""SqlCheckpointer on SQLite and the local PostgreSQL: the saver contract, real graph resumes,
unreadable values, and the fence that keeps a trace's checkpoints to the process running it."""

import asyncio
import operator
import uuid
from typing import Annotated, TypedDict

import pytest
from helpers import parametrize_backends
from langgraph.checkpoint.base import ERROR, empty_checkpoint
from langgraph.graph import END, START, StateGraph
from sqlalchemy import update

from agentrt.core.errors import StoreError
from agentrt.store.checkpoints import GraphCheckpoint, GraphCheckpointBlob, GraphCheckpointWrite
from agentrt.store.lease import Owner
from agentrt.store.models import Trace
from agentrt.workflows.checkpoint import SqlCheckpointer


def pytest_generate_tests(metafunc):
    parametrize_backends(metafunc)


@pytest.fixture
def saver(store):
    return SqlCheckpointer(store.engine)


def cfg(thread, ns="", checkpoint_id=None):
    conf = {"thread_id": thread, "checkpoint_ns": ns}
    if checkpoint_id:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


def checkpoint(values, versions, prev=None):
    c = empty_checkpoint()
    c["channel_values"] = dict(values)
    c["channel_versions"] = dict(versions)
    if prev is not None:
        c["versions_seen"] = {"node": dict(prev["channel_versions"])}
    return c


def test_put_and_get_round_trip(saver):
    t = uuid.uuid4().hex
    c1 = checkpoint({"a": {"x": [1, 2]}, "b": "text"}, {"a": "1", "b": "1"})
    conf1 = saver.put(cfg(t), c1, {"source": "input", "step": -1}, {"a": "1", "b": "1"})
    c2 = checkpoint({"a": {"x": [1, 2]}, "b": "more"}, {"a": "1", "b": "2"}, prev=c1)
    conf2 = saver.put(conf1, c2, {"source": "loop", "step": 0}, {"b": "2"})

    latest = saver.get_tuple(cfg(t))
    assert latest.config["configurable"]["checkpoint_id"] == c2["id"]
    assert latest.checkpoint["channel_values"] == {"a": {"x": [1, 2]}, "b": "more"}
    assert latest.metadata["source"] == "loop" and latest.metadata["step"] == 0
    assert latest.parent_config["configurable"]["checkpoint_id"] == c1["id"]
    first = saver.get_tuple(cfg(t, checkpoint_id=c1["id"]))
    assert first.checkpoint["channel_values"]["b"] == "text" and first.parent_config is None
    assert conf2["configurable"]["checkpoint_id"] == c2["id"]
    # an unchanged channel is stored once: 2 checkpoints, 3 blobs (a@1, b@1, b@2)
    assert saver.count(t) == {"checkpoints": 2, "blobs": 3, "writes": 0}
    assert saver.get_tuple(cfg(uuid.uuid4().hex)) is None


def test_pending_writes_order_and_idempotence(saver):
    t = uuid.uuid4().hex
    c = checkpoint({}, {})
    conf = saver.put(cfg(t), c, {"source": "input", "step": -1}, {})
    saver.put_writes(conf, [("outputs", {"b": 1})], task_id="tb", task_path="~b")
    saver.put_writes(conf, [("outputs", {"a": 1}), ("log", "x")], task_id="ta", task_path="~a")
    saver.put_writes(conf, [("outputs", {"a": "changed"})], task_id="ta", task_path="~a")  # ignored
    saver.put_writes(conf, [(ERROR, "first")], task_id="tc", task_path="~c")
    saver.put_writes(conf, [(ERROR, "second")], task_id="tc", task_path="~c")  # replaces
    writes = saver.get_tuple(cfg(t)).pending_writes
    assert writes == [("ta", "outputs", {"a": 1}), ("ta", "log", "x"),
                      ("tb", "outputs", {"b": 1}), ("tc", ERROR, "second")]


def test_list_filters(saver):
    t = uuid.uuid4().hex
    conf = cfg(t)
    ids = []
    for step in range(4):
        c = checkpoint({"n": step}, {"n": str(step + 1)})
        conf = saver.put(conf, c, {"source": "loop", "step": step, "tag": "even" if step % 2 == 0 else "odd"},
                         {"n": str(step + 1)})
        ids.append(c["id"])
    saver.put(cfg(t, ns="sub:1"), checkpoint({}, {}), {"source": "loop", "step": 0}, {})
    newest_first = [x.checkpoint["id"] for x in saver.list(cfg(t))]
    assert newest_first == list(reversed(ids))
    assert [x.metadata["step"] for x in saver.list(cfg(t), filter={"tag": "even"})] == [2, 0]
    assert len(list(saver.list(cfg(t), limit=2))) == 2
    assert [x.metadata["step"] for x in saver.list(cfg(t), before=cfg(t, checkpoint_id=ids[2]))] == [1, 0]
    everything = list(saver.list({"configurable": {"thread_id": t}}))
    assert len(everything) == 5  # no namespace given: the subgraph's checkpoint too
    saver.delete_thread(t)
    assert saver.count(t) == {"checkpoints": 0, "blobs": 0, "writes": 0}


def test_bad_configs_raise_store_errors(saver):
    with pytest.raises(StoreError, match="thread_id"):
        saver.get_tuple({"configurable": {}})
    with pytest.raises(StoreError, match="longer than"):
        saver.get_tuple(cfg("x" * 65))
    with pytest.raises(StoreError, match="checkpoint_id"):
        saver.put_writes(cfg("t"), [("a", 1)], task_id="t")


class State(TypedDict, total=False):
    log: Annotated[list, operator.add]


def _graph(saver, calls, fail):
    """START -> a, b (parallel) -> c (join) -> END; c fails while `fail` holds a token."""
    def node(name):
        def run(state):
            calls.append(name)
            if name in fail:
                fail.remove(name)
                raise RuntimeError(f"{name} interrupted")
            return {"log": [name]}
        return run

    g = StateGraph(State)
    for n in "abc":
        g.add_node(n, node(n))
    g.add_edge(START, "a")
    g.add_edge(START, "b")
    g.add_edge(["a", "b"], "c")
    g.add_edge("c", END)
    return g.compile(checkpointer=saver)


def test_graph_resumes_without_rerunning_finished_nodes(saver):
    calls, config = [], {"configurable": {"thread_id": uuid.uuid4().hex}}
    graph = _graph(saver, calls, fail={"c"})
    with pytest.raises(RuntimeError, match="c interrupted"):
        graph.invoke({"log": []}, config, durability="sync")
    assert graph.get_state(config).next == ("c",)
    result = _graph(saver, calls, fail=set()).invoke(None, config, durability="sync")
    assert sorted(result["log"][:2]) == ["a", "b"] and result["log"][2] == "c"
    assert sorted(calls) == ["a", "b", "c", "c"]  # only the failed node ran again


def test_async_graph_uses_the_async_api(saver):
    calls, config = [], {"configurable": {"thread_id": uuid.uuid4().hex}}

    async def go():
        graph = _graph(saver, calls, fail={"c"})
        with pytest.raises(RuntimeError):
            await graph.ainvoke({"log": []}, config, durability="sync")
        out = await graph.ainvoke(None, config, durability="sync")
        states = [s async for s in graph.aget_state_history(config)]
        return out, states

    out, states = asyncio.run(go())
    assert sorted(out["log"]) == ["a", "b", "c"]
    assert sorted(calls) == ["a", "b", "c", "c"]
    assert len(states) >= 3


def _lease_elsewhere(store, trace_id):
    """Write another process's lease onto a trace, as its takeover would."""
    table = Trace.__table__
    with store.engine.begin() as conn:
        conn.execute(update(table).where(table.c.id == trace_id)
                     .values(owner=Owner("far-away/1", 7, "1", "t").key))


def test_a_fenced_saver_writes_only_the_threads_of_traces_it_runs(store):
    saver = SqlCheckpointer(store.engine, fence=store.fence)
    tid = store.start_trace(problem="p", requested_mode="slow", model_id="m", backend="fake")
    c1 = checkpoint({"a": 1}, {"a": "1"})
    conf = saver.put(cfg(tid), c1, {"source": "input", "step": -1}, {"a": "1"})
    saver.put_writes(conf, [("a", 2)], task_id="t1")
    free = uuid.uuid4().hex  # a thread that is no trace: not fenced
    saver.put(cfg(free), checkpoint({"a": 1}, {"a": "1"}), {"step": -1}, {"a": "1"})
    before = saver.count(tid)
    assert before == {"checkpoints": 1, "blobs": 1, "writes": 1}

    _lease_elsewhere(store, tid)  # another process took the trace over
    later = checkpoint({"a": 3}, {"a": "2"}, prev=c1)
    for write in (lambda: saver.put(conf, later, {"step": 0}, {"a": "2"}),
                  lambda: saver.put_writes(conf, [("a", 3)], task_id="t2"),
                  lambda: saver.delete_thread(tid)):
        with pytest.raises(StoreError, match=f"trace {tid} is owned by another process"):
            write()
    assert saver.count(tid) == before
    assert saver.get_tuple(cfg(tid)).checkpoint["id"] == c1["id"]

    done = store.start_trace(problem="p", requested_mode="slow", model_id="m", backend="fake")
    store.finish_trace(done, answer="4", status="ok", mode="slow")
    with pytest.raises(StoreError, match="already finished"):
        saver.put(cfg(done), checkpoint({"a": 1}, {"a": "1"}), {"step": -1}, {"a": "1"})
    assert saver.count(done)["checkpoints"] == 0
    saver.delete_thread(free)  # unfenced threads are deleted as before
    assert saver.count(free)["checkpoints"] == 0


@pytest.mark.parametrize("damage", ["blob", "checkpoint", "type", "write"])
def test_an_unreadable_checkpoint_is_a_store_error(saver, store, damage):
    t = uuid.uuid4().hex
    conf = saver.put(cfg(t), checkpoint({"a": {"x": 1}}, {"a": "1"}), {"step": -1}, {"a": "1"})
    saver.put_writes(conf, [("a", {"y": 2})], task_id="t1")
    table, values = {
        "blob": (GraphCheckpointBlob.__table__, {"blob": b"\xc1\xff not msgpack"}),
        "checkpoint": (GraphCheckpoint.__table__, {"checkpoint": b"\x92\x01"}),
        "type": (GraphCheckpoint.__table__, {"type": "no-such-serializer"}),
        "write": (GraphCheckpointWrite.__table__, {"blob": b"\xc1"}),
    }[damage]
    with store.engine.begin() as conn:
        conn.execute(update(table).where(table.c.thread_id == t).values(**values))
    with pytest.raises(StoreError, match=f"checkpoint .* of thread {t} is unreadable"):
        saver.get_tuple(cfg(t))
    with pytest.raises(StoreError, match="unreadable"):
        list(saver.list(cfg(t)))
