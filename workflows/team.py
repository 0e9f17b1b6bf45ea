"""Team mode: a problem answered by a conversation of agents, without a designer.

`team_spec` turns a small API into a `WorkflowSpec`: one conversation node `team`, the agents
given as `[{"role": ..., "private": ...}, ...]` (the shape of an information-exchange problem's
`meta["agents"]`), with a round budget and a pattern (`debate` by default: independent first
answers, then revisions, then the moderator if they never agree); or, with the `pool` pattern,
a one-round share of what each agent knows followed by a python tool node that computes the
answer from what was shared (a 135M model cannot do a word problem's arithmetic in a message,
but it writes the program). `run_team` runs that
spec through the same `execute` stage as slow thinking, in a checkpointed graph whose thread is
the trace id, so `resume_team` continues a killed team solve without repeating finished
messages. The outcome's path is "slow" (a workflow ran); the trace's requested mode is "team".

This module knows the spec and the graph library; the runtime owns traces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph

from agentrt.core.config import Limits
from agentrt.core.errors import InvalidInputError, LimitExceededError, WorkflowError
from agentrt.core.types import Outcome
from agentrt.workflows.context import SolveContext
from agentrt.workflows.slow.compile import execute
from agentrt.workflows.slow.state import SlowState
from agentrt.workflows.spec import WorkflowSpec, check_spec

__all__ = ["TEAM_NODE", "SHARE_NODE", "COMPUTE_NODE", "COMPUTE_ROLE", "TEAM_PATTERNS",
           "DEFAULT_AGENTS", "TEAM_OPTIONS", "team_spec", "team_spec_from", "build_team_graph",
           "run_team", "resume_team"]

TEAM_NODE = "team"
#: The pool pattern's nodes: the agents share what they know, then one writes the program.
SHARE_NODE, COMPUTE_NODE = "share", "compute"
COMPUTE_ROLE = "python programmer"
#: Team patterns: the conversation node's own, and `pool` (a share, then a python tool).
TEAM_PATTERNS = ("debate", "discuss", "pool")
#: Who debates when the caller names no agents.
DEFAULT_AGENTS = ({"role": "careful problem solver", "private": ""},
                  {"role": "skeptical checker", "private": ""})
#: `solve(..., mode="team", **options)` keys that shape the team.
TEAM_OPTIONS = ("agents", "rounds", "pattern", "message_tokens")
_INSTRUCTION = "Solve the problem together and agree on its final answer."
_SHARE = "Tell the team every fact you know that the problem needs."
_COMPUTE = "Compute the answer; print only it."  # the gold teacher's own tool instruction
_REASON = "team mode requested"


def team_spec(agents: Sequence[Mapping[str, Any]] | None = None, *, rounds: int = 3,
              pattern: str = "debate", message_tokens: int | None = None,
              limits: Limits | None = None) -> WorkflowSpec:
    """The one-node workflow of a team solve.

    Args:
        agents: 2 to 4 `{"role": str, "private": str}` mappings (`private` optional); None:
            two default debaters.
        rounds: the round budget, 1 to 6 (a pool shares in one round).
        pattern: "debate" (answer at once, each round), "discuss" (speak in turn) or "pool"
            (every agent tells the others what it knows, at once, in one round; then a python
            programmer reads what they shared and computes the answer in the sandbox: node
            `share`, a conversation, then node `compute`, a python tool node).
        message_tokens: output-token cap of one message (None: the profile's).
        limits: the solve's limits (node count); defaults apply when omitted.

    Raises:
        InvalidInputError: the team breaks a rule; the message lists every problem.

    Example:
        >>> spec = team_spec([{"role": "buyer", "private": "budget 40"},
        ...                   {"role": "seller", "private": "cost 30"}], rounds=2)
        >>> spec.node("team").pattern, len(spec.node("team").agents)
        ('debate', 2)
    """
    if agents is not None and (isinstance(agents, (str, Mapping))
                               or not isinstance(agents, Sequence)):
        raise InvalidInputError('agents must be a list of {"role": ..., "private": ...}')
    if pattern not in TEAM_PATTERNS:
        raise InvalidInputError(f"unknown team pattern {pattern!r}; choose one of: "
                                f"{', '.join(TEAM_PATTERNS)}")
    node = {"id": TEAM_NODE, "kind": "conversation", "role": "team",
            "instruction": _INSTRUCTION, "inputs": [],
            "agents": [dict(a) if isinstance(a, Mapping) else a
                       for a in (DEFAULT_AGENTS if agents is None else agents)],
            "rounds": rounds, "pattern": pattern, "message_tokens": message_tokens}
    design = {"nodes": [node], "final": TEAM_NODE}
    if pattern == "pool":
        share = {**node, "id": SHARE_NODE, "instruction": _SHARE, "pattern": "share",
                 "rounds": None}
        compute = {"id": COMPUTE_NODE, "kind": "tool", "tool": "python",
                   "role": COMPUTE_ROLE, "instruction": _COMPUTE, "inputs": [SHARE_NODE]}
        design = {"nodes": [share, compute], "final": COMPUTE_NODE}
    spec, errors = check_spec(design, limits=limits or Limits(), tools=("python",))
    if errors or spec is None:
        raise InvalidInputError("invalid team: " + "; ".join(errors), errors=errors)
    return spec


def team_spec_from(options: Mapping[str, Any], limits: Limits | None = None) -> WorkflowSpec:
    """`team_spec` from a solve's options (the keys in `TEAM_OPTIONS`; others are ignored)."""
    return team_spec(**{k: options[k] for k in TEAM_OPTIONS if options.get(k) is not None},
                     limits=limits)


def build_team_graph(checkpointer: BaseCheckpointSaver | None = None) -> Any:
    """START -> execute (the conversation workflow) -> END, checkpointed when given one."""
    g = StateGraph(SlowState, context_schema=SolveContext)
    g.add_node("execute", execute)
    g.add_edge(START, "execute")
    g.add_edge("execute", END)
    return g.compile(checkpointer=checkpointer)


def _config(thread_id: str, limits: Limits) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 8,
            "max_concurrency": limits.max_fan_out}


def run_team(problem: str, context: str | None, ctx: SolveContext, *,
             checkpointer: BaseCheckpointSaver | None = None,
             thread_id: str | None = None) -> Outcome:
    """Solve with a conversation of agents shaped by `ctx.extra` (see `team_spec_from`).

    Args:
        problem: the problem text.
        context: earlier conversation, shown to every agent as notes; or None.
        ctx: backend, recorder, limits, prompt profile; `extra` holds the team options.
        checkpointer: where to checkpoint (None: not resumable).
        thread_id: checkpoint thread; the trace id by default.

    Raises:
        InvalidInputError: the team options break a rule.
        LimitExceededError: a budget ran out (`partial` holds the answer most agents last
            gave, or an empty one).
    """
    spec = team_spec_from(ctx.extra, ctx.limits)
    inputs = {"problem": problem, "context": context or "", "reflection": context or "",
              "round": 1, "spec": spec.model_dump()}
    graph = build_team_graph(checkpointer)
    return _drive(graph, inputs, _config(thread_id or ctx.recorder.trace_id, ctx.limits), ctx,
                  checkpointer)


def resume_team(ctx: SolveContext, checkpointer: BaseCheckpointSaver, thread_id: str, *,
                problem: str, context: str | None = None) -> Outcome:
    """Continue an interrupted team solve from its last checkpoint (or start it over)."""
    graph = build_team_graph(checkpointer)
    config = _config(thread_id, ctx.limits)
    snapshot = graph.get_state(config)
    if not snapshot.values:
        return run_team(problem, context, ctx, checkpointer=checkpointer, thread_id=thread_id)
    ctx.recorder.stage("resume", {"next": list(snapshot.next), "round": 1}, round=1)
    done = not snapshot.next and not snapshot.tasks  # no finished task's writes left to apply
    return _drive(graph, snapshot.values if done else None, config, ctx, checkpointer,
                  done=done)


def _drive(graph: Any, inputs: dict[str, Any] | None, config: RunnableConfig,
           ctx: SolveContext, checkpointer: BaseCheckpointSaver | None, *,
           done: bool = False) -> Outcome:
    state: dict[str, Any] = dict(inputs or {}) if done else {}
    options = {"durability": "sync"} if checkpointer is not None else {}
    try:
        if not done:
            for state in graph.stream(inputs, config, context=ctx, stream_mode="values",
                                      **options):
                pass
    except LimitExceededError as e:
        e.partial = Outcome(mode="slow", answer=_best_so_far(ctx), route_reason=_REASON)
        _forget(checkpointer, config)
        raise
    except GraphRecursionError as e:
        raise WorkflowError(f"team graph ran past its recursion limit: {e}") from None
    _forget(checkpointer, config)
    return Outcome(mode="slow", answer=str(state.get("answer", "") or ""), verdict=None,
                   route_reason=_REASON, rounds=1, selected_round=1)


def _best_so_far(ctx: SolveContext) -> str:
    """When a budget cuts the conversation short: the answer most agents gave in their latest
    readable messages (the latest one on a tie), or "" when none gave one."""
    latest: dict[str, tuple[int, str]] = {}
    trace = ctx.recorder.store.get_trace(ctx.recorder.trace_id)
    for step in trace.steps:
        if step.kind == "decision" and step.name == "message" and not step.superseded:
            answer = str(step.outputs.get("answer") or "").strip()
            if answer:
                latest[str(step.inputs.get("agent"))] = (step.id or 0, answer)
    if not latest:
        return ""
    counts: dict[str, int] = {}
    for _, answer in latest.values():
        counts[answer] = counts.get(answer, 0) + 1
    newest = {answer: sid for sid, answer in latest.values()}
    return max(counts, key=lambda a: (counts[a], newest[a]))


def _forget(checkpointer: BaseCheckpointSaver | None, config: RunnableConfig) -> None:
    if checkpointer is not None:
        checkpointer.delete_thread(config["configurable"]["thread_id"])
