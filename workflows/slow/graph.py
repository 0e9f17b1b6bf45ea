"""Slow thinking as one LangGraph graph, and the runner that starts or resumes it.

    reflect -> design -> execute -> judge --(no, rounds left)--> reflect
                                        \\--(yes, or no rounds left)--> select -> END

`execute` runs the round's designed workflow as a subgraph (see `agentrt.workflows.slow.compile`). With a
checkpointer every superstep is saved before the next starts (durability "sync"), under the
thread id = trace id, so `resume_slow` continues a killed solve where it stopped: finished
stages and finished experts are not run again. Checkpoints of a solve that reached an outcome
(an answer, or a spent budget) are deleted; those of an interrupted or failed one are kept.

A task runs again on resume unless its result was saved: a task that finished inside the
interrupted superstep saved its writes and is skipped, the others (and everything they had
recorded) start over. `superseded_steps` finds the steps of the tasks that start over, so that
the runtime can mark them and count each call once.

Both runners return an `Outcome`. When a budget runs out, the `LimitExceededError` carries it
as `partial`: the best answer so far (see `agentrt.workflows.slow.judge.best_so_far`). This module
knows the stages and LangGraph; the runtime owns traces and turns the outcome into a `Solution`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph

from agentrt.core.config import Limits
from agentrt.core.errors import LimitExceededError, WorkflowError
from agentrt.core.types import Outcome
from agentrt.store import StepRecord
from agentrt.workflows.context import SolveContext
from agentrt.workflows.slow.compile import execute
from agentrt.workflows.slow.design import design, reflect
from agentrt.workflows.slow.judge import best_so_far, judge, route, select
from agentrt.workflows.slow.state import SlowState

__all__ = ["build_slow_graph", "slow_config", "run_slow", "resume_slow", "superseded_steps"]

# LangGraph's separators in checkpoint namespaces ("execute:<task id>|n_calc:<task id>").
NS_SEP, NS_END = "|", ":"

_STAGES_PER_ROUND = 4  # reflect, design, execute, judge


def build_slow_graph(checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """Compile the slow-thinking graph (with a checkpointer for resumable solves)."""
    g = StateGraph(SlowState, context_schema=SolveContext)
    g.add_node("reflect", reflect)
    g.add_node("design", design)
    g.add_node("execute", execute)
    g.add_node("judge", judge)
    g.add_node("select", select)
    g.add_edge(START, "reflect")
    g.add_edge("reflect", "design")
    g.add_edge("design", "execute")
    g.add_edge("execute", "judge")
    g.add_conditional_edges("judge", route, {"reflect": "reflect", "select": "select"})
    g.add_edge("select", END)
    return g.compile(checkpointer=checkpointer)


def slow_config(thread_id: str, limits: Limits) -> RunnableConfig:
    """Run config: thread id, an explicit small recursion limit and the concurrency cap."""
    return {"configurable": {"thread_id": thread_id},
            "recursion_limit": _STAGES_PER_ROUND * limits.max_rounds + 4,
            "max_concurrency": limits.max_fan_out}


def run_slow(problem: str, context: str | None, ctx: SolveContext, *,
             checkpointer: BaseCheckpointSaver | None = None,
             thread_id: str | None = None) -> Outcome:
    """Solve with slow thinking.

    Args:
        problem: the problem text.
        context: earlier conversation shown to the reflection, or None.
        ctx: backend, recorder, tools, limits and prompt profile.
        checkpointer: where to checkpoint (None: not resumable).
        thread_id: checkpoint thread; the trace id by default.

    Returns:
        The selected answer, its verdict, the rounds run and the round selected.

    Raises:
        LimitExceededError: a budget ran out; `partial` holds the best answer so far.
        WorkflowError: the graph exceeded its recursion limit (a bug, not a model failure).
    """
    graph = build_slow_graph(checkpointer)
    config = slow_config(thread_id or ctx.recorder.trace_id, ctx.limits)
    return _drive(graph, {"problem": problem, "context": context or ""}, config, ctx,
                  checkpointer)


def resume_slow(ctx: SolveContext, checkpointer: BaseCheckpointSaver, thread_id: str, *,
                problem: str, context: str | None = None) -> Outcome:
    """Continue an interrupted slow solve from its last checkpoint.

    Without any checkpoint (killed before the first superstep was saved) the solve starts over
    from `problem`; a graph that had already finished just returns its result. A kill between
    a task saving its writes and the superstep's checkpoint leaves a snapshot with no next
    node but that finished task: it is not finished, and continues from those writes.
    """
    graph = build_slow_graph(checkpointer)
    config = slow_config(thread_id, ctx.limits)
    snapshot = graph.get_state(config)
    if not snapshot.values:
        return _drive(graph, {"problem": problem, "context": context or ""}, config, ctx,
                      checkpointer)
    ctx.recorder.stage("resume", {"next": list(snapshot.next),
                                  "round": snapshot.values.get("round", 0)},
                       round=int(snapshot.values.get("round", 0) or 0))
    if not snapshot.next and not snapshot.tasks:  # the graph had finished
        return _result(snapshot.values, checkpointer, config)
    return _drive(graph, None, config, ctx, checkpointer)


def superseded_steps(steps: Sequence[StepRecord], checkpointer: Any, thread_id: str
                     ) -> list[int]:
    """Ids of the steps that a resume from the thread's checkpoints makes stale.

    A step recorded by a graph task (`StepRecord.task`, its namespace "a:<id>|b:<id>") stays
    valid when that task, or a task it ran inside, saved its result; otherwise the resumed run
    executes the task again and its steps are superseded. Steps recorded outside a task (no
    `task`) and steps already superseded are never returned.

    Args:
        steps: the trace's steps, superseded ones included or not.
        checkpointer: a `SqlCheckpointer` (anything with `finished_tasks(thread_id)`).
        thread_id: the solve's checkpoint thread (its trace id).
    """
    done = checkpointer.finished_tasks(thread_id)

    def kept(path: str) -> bool:
        parts = path.split(NS_SEP)
        return any((NS_SEP.join(parts[:i]), part.rpartition(NS_END)[2]) in done
                   for i, part in enumerate(parts))

    return [s.id for s in steps
            if s.task and s.id is not None and not s.superseded and not kept(s.task)]


def _drive(graph: Any, inputs: dict[str, Any] | None, config: RunnableConfig,
           ctx: SolveContext, checkpointer: BaseCheckpointSaver | None) -> Outcome:
    state: dict[str, Any] = {}
    # "sync": each superstep is saved before the next starts (only meaningful, and only
    # accepted by LangGraph, with a checkpointer)
    options = {"durability": "sync"} if checkpointer is not None else {}
    try:
        for state in graph.stream(inputs, config, context=ctx, stream_mode="values", **options):
            pass
    except LimitExceededError as e:
        if checkpointer is not None:
            state = graph.get_state(config).values or state
        best = best_so_far(state)
        e.partial = Outcome(mode="slow", answer=best["answer"], verdict=best["verdict"],
                            route_reason="slow mode requested")
        _forget(checkpointer, config)
        raise
    except GraphRecursionError as e:
        raise WorkflowError(f"slow-thinking graph ran past its recursion limit: {e}") from None
    return _result(state, checkpointer, config)


def _result(state: dict[str, Any], checkpointer: BaseCheckpointSaver | None,
            config: RunnableConfig) -> Outcome:
    _forget(checkpointer, config)
    return Outcome(mode="slow", answer=state.get("answer", "") or "",
                   verdict=state.get("verdict") or "unknown", route_reason="slow mode requested",
                   rounds=int(state.get("round", 0) or 0),
                   selected_round=int(state.get("selected_round", 0) or 0))


def _forget(checkpointer: BaseCheckpointSaver | None, config: RunnableConfig) -> None:
    if checkpointer is not None:
        checkpointer.delete_thread(config["configurable"]["thread_id"])
