"""Conversation nodes: 2-4 agents exchange messages until they agree on an answer, as a subgraph.

Each agent has a role that every participant sees and, optionally, a private context that only
its own prompts contain. A round gives every agent one message (template `agent`): in the
`discuss` pattern they speak in turn and each reads every earlier message; in the `debate`
pattern they speak at once and read only earlier rounds, so first answers are independent. A
message is one JSON object `{"message", "answer", "agree"}` (schema-constrained where the
backend can; a last `ANSWER: ...` line is accepted too), re-asked at most `max_repairs` times
when unreadable. After each round the latest answers are compared (normalised, see
`same_answer`): equal and non-empty ends the conversation with that answer; at the round budget
the moderator (template `aggregate`) chooses among the latest answers, falling back to the
most frequent one.

The conversation is its own small `StateGraph` with a bounded loop (one superstep per message
in `discuss`, per round in `debate`), run inside its workflow node with that node's config, so
its checkpoints live in the solve's thread: a resumed solve does not repeat finished messages.
Every message is a recorded `agent` step (node = the conversation's id) followed by a `message`
decision with its round, agent, answer and agreement. This module knows the spec, prompts and
the graph library; it does not know how the workflow around it was designed.
"""

from __future__ import annotations

import operator
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agentrt.workflows.answers import extract_final_answer, parse_json_object
from agentrt.workflows.context import SolveContext
from agentrt.workflows.prompts import render
from agentrt.workflows.slow.state import (
    WorkflowState,
    clip,
    input_views,
    record_node,
    stage_params,
    structured,
)
from agentrt.workflows.spec import AgentSpec, NodeSpec

__all__ = ["DEFAULT_ROUNDS", "ConversationState", "make_conversation", "build_conversation",
           "read_message", "same_answer", "normalize_answer"]

DEFAULT_ROUNDS = 3
_ANSWER_LINE = re.compile(r"^\s*\**answer\**\s*[:：]\s*(.+?)\s*$", re.I | re.M)
_NUMBER = re.compile(r"^[-+]?\d[\d,]*(?:\.\d+)?$")
_ANSWER_CHARS = 200
_PLACEHOLDER = re.compile(r"[\s.…?<>_\-\[\]]*")  # what is left of a format's "..." copied
_COPIED = 'the "answer" is the reply format\'s placeholder, not an answer: write the answer itself'

NodeFn = Callable[..., dict[str, Any]]


class ConversationState(TypedDict, total=False):
    """One conversation: what the agents are given and every message so far.

    Attributes:
        problem, notes, inputs: the problem, the solve's notes (reflection or context) and the
            views of the node's inputs; shared by every agent.
        round: the slow-thinking round the conversation belongs to (recorded on its steps).
        turn: rounds finished so far.
        messages: one entry per message: agent index, turn, message, answer, agree (appended).
        agreed, answer, chosen_by: the outcome ("agreement", "moderator" or "majority").
    """

    problem: str
    notes: str
    inputs: list[dict[str, str]]
    round: int
    turn: int
    messages: Annotated[list[dict[str, Any]], operator.add]
    agreed: bool
    answer: str
    chosen_by: str


def normalize_answer(answer: str) -> str:
    """An answer as compared for agreement: cleaned like a final answer, case and spacing
    folded, thousands separators and a trailing `.0` dropped from numbers."""
    text = " ".join(extract_final_answer(str(answer)).split()).casefold()
    if _NUMBER.match(text):
        text = text.replace(",", "")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    return text


def same_answer(answers: list[str]) -> bool:
    """Whether every answer is non-empty and all are equal after `normalize_answer`."""
    norm = [normalize_answer(a) for a in answers]
    return bool(norm) and all(norm) and len(set(norm)) == 1


def read_message(text: str) -> tuple[dict[str, Any] | None, str]:
    """The structured part of an agent's reply: ({message, answer, agree}, "") or (None, why).

    A JSON object with a string `answer` (and optionally a string `message` and a boolean
    `agree`) wins; otherwise a last line `ANSWER: ...` (the text before it is the message).
    An answer that is only the format's placeholder copied ("...", "<...>") is refused: a small
    model copies it, and two agents "agreeing" on it is no answer.
    """
    obj = parse_json_object(text)
    if obj is not None:
        answer, message, agree = obj.get("answer"), obj.get("message", ""), obj.get("agree", False)
        if not isinstance(answer, (str, int, float)) or isinstance(answer, bool):
            return None, 'the JSON object has no "answer" string'
        if not isinstance(message, str) or not isinstance(agree, bool):
            return None, '"message" must be a string and "agree" true or false'
        if not str(answer).strip():
            return None, 'the "answer" is empty'
        if _PLACEHOLDER.fullmatch(str(answer)):
            return None, _COPIED
        return {"message": message.strip(), "answer": str(answer).strip()[:_ANSWER_CHARS],
                "agree": agree}, ""
    lines = _ANSWER_LINE.findall(text)
    if lines and _PLACEHOLDER.fullmatch(lines[-1]):
        return None, _COPIED
    if lines:
        cut = list(_ANSWER_LINE.finditer(text))[-1].start()
        return {"message": text[:cut].strip(), "answer": lines[-1][:_ANSWER_CHARS],
                "agree": False}, ""
    return None, ('reply with one JSON object {"message": ..., "answer": ..., "agree": ...}; '
                  'this reply has none')


def _label(k: int) -> str:
    return f"A{k + 1}"


def _settings(node: NodeSpec) -> tuple[list[AgentSpec], int, str]:
    pattern = node.pattern or "discuss"
    rounds = 1 if pattern == "share" else node.rounds or DEFAULT_ROUNDS
    return list(node.agents or []), rounds, pattern


def _latest(messages: list[dict[str, Any]], turn: int, count: int) -> list[dict[str, Any]]:
    """Each agent's message of round `turn`, in agent order."""
    found = {m["agent"]: m for m in messages if m["turn"] == turn}
    return [found[k] for k in range(count) if k in found]


def _shown(messages: list[dict[str, Any]], agents: list[AgentSpec]) -> list[dict[str, Any]]:
    """Messages as prompts show them (roles and labels, never a private context)."""
    return [{"label": _label(m["agent"]), "role": agents[m["agent"]].role, "turn": m["turn"],
             "message": m["message"], "answer": m["answer"], "agree": m["agree"]}
            for m in sorted(messages, key=lambda m: (m["turn"], m["agent"]))]


def _message_schema(max_chars: int) -> dict[str, Any]:
    return {"type": "object",
            "properties": {"message": {"type": "string", "maxLength": max_chars},
                           "answer": {"type": "string", "minLength": 1,
                                      "maxLength": _ANSWER_CHARS},
                           "agree": {"type": "boolean"}},
            "required": ["message", "answer", "agree"], "additionalProperties": False}


def _speaker(node: NodeSpec, k: int) -> NodeFn:
    """Graph node: agent k writes its message of the current round."""
    agents, rounds, pattern = _settings(node)

    def speak(state: ConversationState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
        ctx, turn = runtime.context, int(state.get("turn", 0)) + 1
        rnd = int(state.get("round", 1))
        params = stage_params(ctx, "agent")
        if node.message_tokens:
            params = params.model_copy(update={"max_tokens": min(params.max_tokens,
                                                                 node.message_tokens)})
        schema = _message_schema(int(params.max_tokens * 3)) if structured(ctx) else None
        seen = [m for m in state.get("messages", [])
                if m["turn"] < turn or (pattern == "discuss" and m["agent"] < k)]
        shared = dict(label=_label(k), role=agents[k].role, private=agents[k].private,
                      team=[{"label": _label(i), "role": a.role} for i, a in enumerate(agents)],
                      turn=turn, rounds=rounds, problem=state["problem"],
                      notes=state.get("notes", ""), inputs=state.get("inputs", []),
                      instruction=node.instruction, transcript=_shown(seen, agents),
                      independent=pattern != "discuss", structured=schema is not None)
        error, read, text = "", None, ""
        for attempt in range(1 + ctx.limits.max_repairs):
            prompt = render("agent", ctx.profile, error=error, **shared)
            resp = ctx.recorder.llm(ctx.backend, prompt, name="agent" if attempt == 0
                                    else "agent_repair", node=node.id, round=rnd,
                                    params=params, json_schema=schema)
            text = resp.text
            read, error = read_message(text)
            if read is not None:
                break
        if read is None:  # unreadable after every retry: it speaks, but gives no answer
            read = {"message": clip(text, 1000), "answer": "", "agree": False}
        message = {"agent": k, "turn": turn, **read}
        ctx.recorder.decision("message", {"agent": _label(k), "role": agents[k].role,
                                          "turn": turn},
                              {"answer": read["answer"], "agree": read["agree"],
                               "readable": not error}, node=node.id, round=rnd)
        return {"messages": [message]}

    return speak


def _check(node: NodeSpec) -> NodeFn:
    """Graph node: close a round; agreement ends the conversation (and so does the one round
    of a share)."""
    agents, _, pattern = _settings(node)

    def check(state: ConversationState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
        ctx, turn = runtime.context, int(state.get("turn", 0)) + 1
        latest = _latest(state.get("messages", []), turn, len(agents))
        answers = [m["answer"] for m in latest]
        agreed = len(latest) == len(agents) and same_answer(answers)
        ctx.recorder.decision("conversation_round", {"turn": turn},
                              {"answers": answers, "agreed": agreed}, node=node.id,
                              round=int(state.get("round", 1)))
        out: dict[str, Any] = {"turn": turn}
        if agreed:
            out.update(agreed=True, answer=answers[0], chosen_by="agreement")
        elif pattern == "share":  # no moderator: the answer is only a by-product of sharing
            out.update(answer=_most_frequent(latest), chosen_by="majority")
        return out

    return check


def _aggregate(node: NodeSpec) -> NodeFn:
    """Graph node: the round budget is spent without agreement; choose among the answers."""
    agents, _, _ = _settings(node)

    def aggregate(state: ConversationState, runtime: Runtime[SolveContext]) -> dict[str, Any]:
        ctx, turn = runtime.context, int(state.get("turn", 0))
        rnd = int(state.get("round", 1))
        latest = _latest(state.get("messages", []), turn, len(agents))
        distinct: dict[str, str] = {}
        for m in latest:
            if m["answer"]:
                distinct.setdefault(normalize_answer(m["answer"]), m["answer"])
        candidates = list(distinct.values())
        if len(candidates) <= 1:
            return {"answer": candidates[0] if candidates else "", "chosen_by": "majority"}
        choice = _moderate(ctx, node, state, latest, candidates, rnd, agents)
        if choice is not None:
            return {"answer": candidates[choice], "chosen_by": "moderator"}
        best = _most_frequent(latest)
        ctx.recorder.decision("aggregate_fallback", {"candidates": candidates},
                              {"answer": best}, node=node.id, round=rnd)
        return {"answer": best, "chosen_by": "majority"}

    return aggregate


def _most_frequent(latest: list[dict[str, Any]]) -> str:
    """The answer most of `latest` gave (the first such on a tie), or "" when none gave one."""
    counts = Counter(normalize_answer(m["answer"]) for m in latest if m["answer"])
    if not counts:
        return ""
    top = max(counts.values())
    return next(m["answer"] for m in latest
                if m["answer"] and counts[normalize_answer(m["answer"])] == top)


def _moderate(ctx: SolveContext, node: NodeSpec, state: ConversationState,
              latest: list[dict[str, Any]], candidates: list[str], rnd: int,
              agents: list[AgentSpec]) -> int | None:
    """The moderator's choice (an index into `candidates`), or None if no reply was valid."""
    params = stage_params(ctx, "aggregate")
    schema = None
    if structured(ctx):
        schema = {"type": "object",
                  "properties": {"reason": {"type": "string",
                                            "maxLength": int(params.max_tokens * 2)},
                                 "choice": {"enum": list(range(1, len(candidates) + 1))}},
                  "required": ["reason", "choice"], "additionalProperties": False}
    shared = dict(problem=state["problem"], instruction=node.instruction,
                  transcript=_shown(latest, agents), structured=schema is not None,
                  candidates=[{"n": i + 1, "answer": a} for i, a in enumerate(candidates)])
    error = ""
    for attempt in range(1 + ctx.limits.max_repairs):
        resp = ctx.recorder.llm(ctx.backend, render("aggregate", ctx.profile, error=error,
                                                    **shared),
                                name="aggregate", node=node.id, round=rnd, params=params,
                                json_schema=schema)
        obj = parse_json_object(resp.text) or {}
        choice = obj.get("choice")
        if isinstance(choice, int) and not isinstance(choice, bool) \
                and 1 <= choice <= len(candidates):
            ctx.recorder.decision("aggregate", {"candidates": candidates},
                                  {"choice": choice, "answer": candidates[choice - 1],
                                   "reason": clip(str(obj.get("reason", "")), 400)},
                                  node=node.id, round=rnd)
            return choice - 1
        error = (f'reply with one JSON object whose "choice" is a number from 1 to '
                 f'{len(candidates)}')
    return None


def _route(node: NodeSpec, names: list[str]) -> Callable[[ConversationState], Any]:
    _, rounds, pattern = _settings(node)

    def route(state: ConversationState) -> Any:
        if state.get("agreed") or pattern == "share":
            return END
        if int(state.get("turn", 0)) >= rounds:
            return "aggregate"
        return names if pattern == "debate" else names[0]

    return route


def build_conversation(node: NodeSpec) -> Any:
    """The compiled conversation subgraph of a (validated) conversation node."""
    agents, _, pattern = _settings(node)
    g = StateGraph(ConversationState, context_schema=SolveContext)
    names = [f"agent{k + 1}" for k in range(len(agents))]
    for k, name in enumerate(names):
        g.add_node(name, _speaker(node, k))
    g.add_node("check", _check(node))
    g.add_node("aggregate", _aggregate(node))
    if pattern != "discuss":  # every agent at once, then the round closes
        for name in names:
            g.add_edge(START, name)
        g.add_edge(names, "check")
    else:  # in turn
        g.add_edge(START, names[0])
        for a, b in zip(names, names[1:]):
            g.add_edge(a, b)
        g.add_edge(names[-1], "check")
    g.add_conditional_edges("check", _route(node, names), [*names, "aggregate", END])
    g.add_edge("aggregate", END)
    return g.compile()


def recursion_limit(node: NodeSpec) -> int:
    """Supersteps of the longest conversation (every round, then the moderator) plus a margin."""
    agents, rounds, pattern = _settings(node)
    per_round = len(agents) + 1 if pattern == "discuss" else 2
    return rounds * per_round + 4


def _summary(node: NodeSpec, result: dict[str, Any], latest: list[dict[str, Any]]) -> str:
    """The node's output text as the nodes that read it see it: what each agent last said and
    answered (a share: what each said), then the outcome."""
    agents, _, pattern = _settings(node)
    if pattern == "share":
        said = [f"{_label(m['agent'])} ({agents[m['agent']].role}): "
                f"{clip(m['message'] or m['answer'], 600) or '(nothing)'}" for m in latest]
        return "\n".join(["What the agents shared:", *said])
    lines = [f"{_label(m['agent'])} ({agents[m['agent']].role}): {clip(m['message'], 400)} "
             f"Answer: {m['answer'] or '(no answer)'}" for m in latest]
    how = {"agreement": "the agents agreed", "moderator": "the moderator chose",
           "majority": "the most frequent answer"}.get(result.get("chosen_by", ""), "")
    return "\n".join([f"A conversation of {len(agents)} agents over {result.get('turn', 0)} "
                      f"round(s); {how}.", *lines, f"Final answer: {result.get('answer') or ''}"])


def make_conversation(node: NodeSpec, *, final: bool) -> NodeFn:
    """The workflow node function of a conversation node: runs its subgraph, returns its output."""

    def run(state: WorkflowState, runtime: Runtime[SolveContext], config: RunnableConfig
            ) -> dict[str, Any]:
        ctx, rnd, started = runtime.context, int(state.get("round", 1)), time.perf_counter()
        agents, _, pattern = _settings(node)
        inner: RunnableConfig = {**config, "recursion_limit": recursion_limit(node)}
        result = build_conversation(node).invoke(
            {"problem": state["problem"], "notes": state.get("reflection", ""),
             "inputs": input_views(ctx, state.get("outputs", {}), node.inputs), "round": rnd,
             "turn": 0,
             "messages": []},
            config=inner, context=ctx)
        answer = str(result.get("answer", "") or "")
        latest = _latest(result.get("messages", []), int(result.get("turn", 0)), len(agents))
        text, said = _summary(node, result, latest), any(m["message"] for m in latest)
        ok = bool(answer) or (pattern == "share" and not final and said)
        out: dict[str, Any] = {"kind": "conversation", "role": node.role,
                               "status": "ok" if ok else "failed", "text": text,
                               "rounds": int(result.get("turn", 0)),
                               "agreed": bool(result.get("agreed")),
                               "chosen_by": result.get("chosen_by", "")}
        if final:
            out["answer"] = answer
        out["latency_s"] = time.perf_counter() - started
        record_node(ctx, node.id, rnd, out)
        return {"outputs": {node.id: out}}

    return run
