"""WorkflowSpec: the typed DAG a model designs for slow thinking, its JSON schema and its checks.

A design is a list of nodes and the id of the final-answer node. A node is an LLM expert (a
role and an instruction), a tool expert (a tool name and the instruction for the expert that
writes the tool call) or a conversation (2 to 4 agents, each with a role and optionally a
private context, exchanging messages for up to `rounds` rounds until they agree; see
`agentrt.workflows.slow.conversation`). Each node lists the nodes whose outputs it reads; those lists are the
edges of the graph, so "b reads a" is the edge a -> b.

Three things live here:

- the pydantic models (`NodeSpec`, `WorkflowSpec`) with generous sanity caps;
- `design_schema`, the JSON schema handed to constrained decoding, sized so that even the
  longest document it admits fits the token budget of one design call (a 135M model under
  xgrammar must always be able to close the JSON); it lives in `agentrt.workflows.spec_schema` and is
  re-exported here;
- `check_spec` / `validate_spec`: every rule a design must pass before anything runs (shape,
  size and fan-out limits, known tools, defined inputs, no cycle, exactly one sink which is the
  final node, conversation sizes), reported as a list of plain sentences a model can act on.

This module knows nothing about prompts, backends or how a spec is compiled and run.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer

from agentrt.core.config import Limits
from agentrt.core.errors import WorkflowError
from agentrt.workflows.spec_schema import (
    FINAL_ID,
    ID_MAX,
    NODE_ID_PATTERN,
    SchemaCaps,
    caps_for_budget,
    design_schema,
)

__all__ = [
    "NODE_ID_PATTERN",
    "FINAL_ID",
    "AGENTS_MIN",
    "AGENTS_MAX",
    "ROUNDS_MAX",
    "AgentSpec",
    "NodeSpec",
    "WorkflowSpec",
    "SchemaCaps",
    "design_schema",
    "caps_for_budget",
    "check_spec",
    "validate_spec",
]


#: Agents of one conversation, and its rounds (each agent speaks once per round).
AGENTS_MIN, AGENTS_MAX, ROUNDS_MAX = 2, 4, 6
#: Fields only a conversation node sets; left out of a dump when unset, so the dump of an llm or
#: tool node is what it was before conversations existed.
_CONVERSATION_FIELDS = ("agents", "rounds", "pattern", "message_tokens")


class AgentSpec(BaseModel):
    """One participant of a conversation node.

    Attributes:
        role: who the agent is; every participant sees every role.
        private: what only this agent knows; no other agent's prompt ever contains it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str = Field(min_length=1, max_length=200)
    private: str = Field("", max_length=4000)


class NodeSpec(BaseModel):
    """One expert of a workflow.

    Attributes:
        id: short snake_case name, unique in the design.
        kind: "llm" (an expert that writes text), "tool" (an expert that writes a tool call
            which then runs in the sandbox) or "conversation" (agents that talk until they
            agree on an answer).
        tool: the tool a tool node calls (None for llm nodes).
        role: who the expert is ("algebra expert", "python programmer"); for a conversation,
            who the team is.
        instruction: what the expert must do with its inputs.
        inputs: ids of the nodes whose outputs this node reads.
        agents: a conversation's participants (2 to 4).
        rounds: a conversation's round budget (1 to 6; None: 3).
        pattern: "discuss" (agents speak in turn and each reads every earlier message),
            "debate" (each round every agent answers at once, reading only earlier rounds, so
            the first answers are independent) or "share" (one round, every agent at once,
            telling the others what it knows; `rounds` does not apply; no agreement is sought,
            the node's output is the messages, for the nodes that read it); None: "discuss".
        message_tokens: output-token cap of one message (None: the profile's cap).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=NODE_ID_PATTERN, max_length=ID_MAX)
    kind: Literal["llm", "tool", "conversation"]
    tool: str | None = Field(None, max_length=32)
    role: str = Field(min_length=1, max_length=200)
    instruction: str = Field(min_length=1, max_length=2000)
    inputs: list[str] = Field(default_factory=list, max_length=32)
    agents: list[AgentSpec] | None = Field(None, max_length=16)
    rounds: int | None = Field(None, ge=1, le=ROUNDS_MAX)
    pattern: Literal["discuss", "debate", "share"] | None = None
    message_tokens: int | None = Field(None, ge=16, le=4096)

    @model_serializer(mode="wrap")
    def _drop_unset_conversation_fields(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for key in _CONVERSATION_FIELDS:
            if data.get(key) is None:
                data.pop(key, None)
        return data


class WorkflowSpec(BaseModel):
    """A designed workflow: nodes plus the id of the node whose output is the final answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    nodes: list[NodeSpec] = Field(min_length=1, max_length=64)
    final: str = Field(min_length=1, max_length=ID_MAX)

    def node(self, node_id: str) -> NodeSpec:
        """The node with this id (KeyError if there is none)."""
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

    @property
    def ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    @property
    def edges(self) -> list[tuple[str, str]]:
        """(source, target) pairs: target reads source's output."""
        return [(src, n.id) for n in self.nodes for src in n.inputs]

    def readers(self, node_id: str) -> list[str]:
        """Ids of the nodes that read `node_id`'s output."""
        return [n.id for n in self.nodes if node_id in n.inputs]

    def layers(self) -> list[list[str]]:
        """Nodes grouped by depth: layer k holds the nodes whose longest input chain has k edges.

        Nodes of one layer never depend on each other, so they can run at once.

        Raises:
            WorkflowError: the spec has a cycle (`check_spec` reports it first).
            KeyError: an input names no node.
        """
        depth: dict[str, int] = {}
        visiting: set[str] = set()

        def visit(node_id: str) -> int:
            if node_id not in depth:
                if node_id in visiting:
                    raise WorkflowError(f"the design has a cycle through {node_id!r}")
                visiting.add(node_id)
                ins = self.node(node_id).inputs
                depth[node_id] = 1 + max((visit(i) for i in ins), default=-1)
            return depth[node_id]

        for n in self.nodes:
            visit(n.id)
        out: list[list[str]] = [[] for _ in range(max(depth.values()) + 1)]
        for n in self.nodes:
            out[depth[n.id]].append(n.id)
        return out


def _pydantic_messages(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        loc = ""
        for part in e["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        out.append(f"{loc or 'design'}: {e['msg']}")
    return out


def _find_cycle(spec: WorkflowSpec) -> list[str] | None:
    inputs = {n.id: [i for i in n.inputs if i in spec.ids] for n in spec.nodes}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def dfs(node_id: str) -> list[str] | None:
        state[node_id] = 1
        path.append(node_id)
        for src in inputs[node_id]:
            if state.get(src) == 1:
                loop = path[path.index(src):] + [src]
                return list(reversed(loop))  # in data-flow order: src -> ... -> src
            if src not in state and (found := dfs(src)):
                return found
        path.pop()
        state[node_id] = 2
        return None

    for n in spec.nodes:
        if n.id not in state and (found := dfs(n.id)):
            return found
    return None


def _conversation_errors(n: NodeSpec, allowed: bool) -> list[str]:
    """Rules of a conversation node, and of the conversation fields on other nodes."""
    set_fields = [k for k in _CONVERSATION_FIELDS if getattr(n, k) is not None]
    if n.kind != "conversation":
        return [f"node {n.id!r} is an {n.kind} node but sets {', '.join(set_fields)}: only a "
                f"conversation node has agents, rounds, pattern or message_tokens"
                ] if set_fields else []
    if not allowed:
        return [f"node {n.id!r} is a conversation, which this design may not use: use llm or "
                f"tool nodes"]
    errors = []
    if n.tool:
        errors.append(f"node {n.id!r} is a conversation node but names tool {n.tool!r}: drop "
                      f"the tool")
    count = len(n.agents or [])
    if not AGENTS_MIN <= count <= AGENTS_MAX:
        errors.append(f"conversation node {n.id!r} has {count} agent(s); a conversation needs "
                      f"{AGENTS_MIN} to {AGENTS_MAX} agents")
    return errors


def _graph_errors(spec: WorkflowSpec, limits: Limits, tools: Collection[str],
                  conversations: bool = True) -> list[str]:
    errors: list[str] = []
    ids = spec.ids
    known = ", ".join(sorted(tools)) or "none"
    if len(ids) > limits.max_nodes:
        errors.append(f"the design has {len(ids)} nodes; the limit is {limits.max_nodes}")
    for dup in sorted({i for i in ids if ids.count(i) > 1}):
        errors.append(f"node id {dup!r} is used by more than one node")
    for n in spec.nodes:
        if n.kind == "tool" and not n.tool:
            errors.append(f"node {n.id!r} is a tool node but names no tool (available: {known})")
        elif n.kind == "tool" and n.tool not in tools:
            errors.append(f"node {n.id!r} uses unknown tool {n.tool!r} (available: {known})")
        elif n.kind == "llm" and n.tool:
            errors.append(f"node {n.id!r} is an llm node but names tool {n.tool!r}: "
                          f"set kind to \"tool\" or drop the tool")
        errors.extend(_conversation_errors(n, conversations))
        for src in sorted(set(n.inputs)):
            if src == n.id:
                errors.append(f"node {n.id!r} reads its own output")
            elif src not in ids:
                errors.append(f"node {n.id!r} reads {src!r}, which is not a node "
                              f"(nodes: {', '.join(ids)})")
            if n.inputs.count(src) > 1:
                errors.append(f"node {n.id!r} lists input {src!r} more than once")
    if spec.final not in ids:
        errors.append(f"final node {spec.final!r} is not one of the nodes ({', '.join(ids)})")
    cycle = _find_cycle(spec)
    if cycle:
        errors.append("the design has a cycle: " + " -> ".join(cycle))
    errors.extend(_shape_errors(spec, limits))
    return errors


def _shape_errors(spec: WorkflowSpec, limits: Limits) -> list[str]:
    errors = []
    sources = [n.id for n in spec.nodes if not n.inputs]
    if not sources:
        errors.append("no node starts the workflow: at least one node must read no input")
    elif len(sources) > limits.max_fan_out:
        errors.append(f"{len(sources)} nodes start in parallel ({', '.join(sources)}); "
                      f"the fan-out limit is {limits.max_fan_out}")
    for node_id in dict.fromkeys(spec.ids):
        readers = spec.readers(node_id)
        if len(readers) > limits.max_fan_out:
            errors.append(f"node {node_id!r} feeds {len(readers)} nodes; the fan-out limit "
                          f"is {limits.max_fan_out}")
        if node_id == spec.final and readers:
            errors.append(f"final node {node_id!r} is read by {', '.join(readers)}: the final "
                          f"node must come last")
        elif node_id != spec.final and not readers and spec.final in spec.ids:
            errors.append(f"node {node_id!r} feeds no other node: make a later node read it, "
                          f"or remove it (only the final node {spec.final!r} may be last)")
    return errors


def check_spec(data: str | Mapping[str, Any] | WorkflowSpec, *, limits: Limits,
               tools: Collection[str], conversations: bool = True
               ) -> tuple[WorkflowSpec | None, list[str]]:
    """Check a design against every rule; never raises on bad input.

    Args:
        data: JSON text, a parsed object, or a spec.
        limits: node count and fan-out limits.
        tools: names of the tools available to tool nodes.
        conversations: whether conversation nodes are allowed.

    Returns:
        (spec, []) when the design passes, else (spec or None, readable error sentences). The
        spec is returned alongside errors when only graph rules failed, so callers can show it.
    """
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            return None, [f"the design is not valid JSON: {e.msg} at character {e.pos}"]
    if not isinstance(data, (Mapping, WorkflowSpec)):
        return None, [f"the design must be a JSON object, not {type(data).__name__}"]
    try:
        spec = data if isinstance(data, WorkflowSpec) else WorkflowSpec.model_validate(data)
    except ValidationError as e:
        return None, _pydantic_messages(e)
    return spec, _graph_errors(spec, limits, tools, conversations)


def validate_spec(data: str | Mapping[str, Any] | WorkflowSpec, *, limits: Limits,
                  tools: Collection[str], conversations: bool = True) -> WorkflowSpec:
    """Like `check_spec` but raises.

    Raises:
        WorkflowError: the design breaks a rule; `details["errors"]` lists every problem.

    Example:
        >>> from agentrt.core.config import Limits
        >>> spec = validate_spec({"nodes": [{"id": "a", "kind": "llm", "role": "solver",
        ...     "instruction": "Solve it.", "inputs": []}], "final": "a"},
        ...     limits=Limits(), tools=["python"])
        >>> spec.layers()
        [['a']]
    """
    spec, errors = check_spec(data, limits=limits, tools=tools, conversations=conversations)
    if errors or spec is None:
        raise WorkflowError("invalid workflow design: " + "; ".join(errors), errors=errors)
    return spec
