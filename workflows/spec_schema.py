"""The JSON schema of a workflow design for constrained decoding, sized to a token budget.

A model under a grammar constraint (xgrammar on the hf backend, `response_format` on
OpenAI-compatible servers) can only write documents the schema admits, and it must be able to
close the JSON before its token limit. So the schema caps every string and the node count, and
`caps_for_budget` picks caps whose longest admitted document fits one call's output budget.
For small models, `fixed_ids` goes further: the schema admits only designs that also pass every
graph rule of `agentrt.workflows.spec.check_spec`. Conversation nodes are admitted only when the
caps say so (`SchemaCaps.conversations`, from the profile's `DesignSizes`, and only where the
token budget has room for one on top of the largest design without one), never with fixed ids,
at most one per design and written first: the schema of a profile or budget without them is
exactly what it was before they existed.

This module knows the shape of a design and the limits; validation lives in `agentrt.workflows.spec`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.config import Limits

__all__ = ["NODE_ID_PATTERN", "FINAL_ID", "ID_MAX", "DesignSizes", "SchemaCaps",
           "caps_for_budget", "design_schema"]

NODE_ID_PATTERN = r"^[a-z][a-z0-9_]{0,15}$"
ID_MAX = 16
#: Id of the final node in fixed-id designs (see `design_schema`).
FINAL_ID = "answer"
#: Characters of a node's JSON that are not its id, role, instruction or inputs (keys, quotes,
#: separators as the grammar fixes them: `", "` and `": "`), with room for the longest kind/tool.
_NODE_OVERHEAD = 96
_DOC_OVERHEAD = 40
#: A conversation node's extra characters: its keys, pattern and rounds, and per agent the
#: object's keys and separators, a role and a private context of the sizes below.
_CONVERSATION_OVERHEAD, _AGENT_OVERHEAD, _SCHEMA_AGENTS = 80, 32, 4
_AGENT_ROLE_CHARS, _AGENT_PRIVATE_CHARS = 40, 160


class SchemaCaps(BaseModel):
    """Size caps of the design schema handed to constrained decoding."""

    max_nodes: int = Field(ge=1)
    max_inputs: int = Field(ge=0)
    role_chars: int = Field(ge=8)
    instruction_chars: int = Field(ge=16)
    conversations: bool = False

    def max_doc_chars(self, tools: Collection[str]) -> int:
        """Length of the longest JSON document the schema admits (fixed separators)."""
        tool_chars = max((len(t) for t in tools), default=0)
        per_node = (_NODE_OVERHEAD + tool_chars + ID_MAX + self.role_chars
                    + self.instruction_chars + self.max_inputs * (ID_MAX + 4))
        extra = 0
        if self.conversations:  # at most one conversation node (the first)
            extra = _CONVERSATION_OVERHEAD + _SCHEMA_AGENTS * (
                _AGENT_OVERHEAD + _AGENT_ROLE_CHARS + _AGENT_PRIVATE_CHARS)
        return _DOC_OVERHEAD + ID_MAX + self.max_nodes * per_node + extra


@dataclass(frozen=True)
class DesignSizes:
    """Where `caps_for_budget` starts, before fitting the schema to a token budget.

    Attributes:
        max_nodes: None: the limits' `max_nodes`; a number: also at most this many nodes and
            `max_fan_out + 1` (room for the final node to read every other node).
        role_chars, instruction_chars: starting string caps.
        instruction_floor: instructions are shortened to this before any node is dropped.
        conversations: the schema admits conversation nodes (free ids only).
    """

    max_nodes: int | None = None
    role_chars: int = 60
    instruction_chars: int = 400
    instruction_floor: int = 160
    conversations: bool = False


def caps_for_budget(limits: Limits, tools: Collection[str], max_tokens: int, *,
                    chars_per_token: float = 2.5,
                    sizes: DesignSizes = DesignSizes()) -> SchemaCaps:
    """The largest caps whose longest admitted document fits `max_tokens` of output.

    Starts from the limits and `sizes` (a prompt profile's: small models get fewer nodes and
    shorter strings), then shortens instructions to `sizes.instruction_floor`, then drops
    nodes, and last shortens instructions to 48 until the worst case fits. `chars_per_token`
    is on the pessimistic side for English JSON (JSON punctuation tokenizes poorly).
    """
    budget = int(max_tokens * chars_per_token)
    nodes = limits.max_nodes
    if sizes.max_nodes is not None:
        nodes = min(limits.max_nodes, sizes.max_nodes, limits.max_fan_out + 1)
    caps = SchemaCaps(max_nodes=nodes, max_inputs=min(nodes - 1, limits.max_fan_out, 4),
                      role_chars=sizes.role_chars, instruction_chars=sizes.instruction_chars)
    caps = _fit(caps, tools, budget, sizes.instruction_floor)
    if sizes.conversations:  # only where one fits without shrinking the rest of the design
        roomy = caps.model_copy(update={"conversations": True})
        if roomy.max_doc_chars(tools) <= budget:
            return roomy
    return caps


def _fit(caps: SchemaCaps, tools: Collection[str], budget: int, floor: int) -> SchemaCaps:
    while caps.max_doc_chars(tools) > budget:
        if caps.instruction_chars > floor:
            caps = caps.model_copy(update={"instruction_chars": caps.instruction_chars - 16})
        elif caps.max_nodes > 1:
            n = caps.max_nodes - 1
            caps = caps.model_copy(update={"max_nodes": n,
                                           "max_inputs": min(caps.max_inputs, n - 1)})
        elif caps.instruction_chars > 48:
            caps = caps.model_copy(update={"instruction_chars": caps.instruction_chars - 16})
        else:
            break  # one minimal node: nothing left to shrink
    return caps


def _node_shapes(tools: Collection[str], caps: SchemaCaps, node_id: dict[str, Any],
                 inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """An llm node and (with tools) a tool node, as alternatives; properties in writing order."""
    text = {
        "role": {"type": "string", "minLength": 1, "maxLength": caps.role_chars},
        "instruction": {"type": "string", "minLength": 1, "maxLength": caps.instruction_chars},
    }
    shapes = [{
        "type": "object",
        "properties": {"id": node_id, "kind": {"const": "llm"}, **text, "inputs": inputs},
        "required": ["id", "kind", "role", "instruction", "inputs"],
        "additionalProperties": False,
    }]
    if tools:
        shapes.insert(0, {
            "type": "object",
            "properties": {"id": node_id, "kind": {"const": "tool"},
                           "tool": {"enum": sorted(tools)}, **text, "inputs": inputs},
            "required": ["id", "kind", "tool", "role", "instruction", "inputs"],
            "additionalProperties": False,
        })
    return shapes


def _conversation_shape(caps: SchemaCaps, node_id: dict[str, Any],
                        inputs: dict[str, Any]) -> dict[str, Any]:
    """A conversation node: a team role and task, 2-4 agents, a pattern and a round budget."""
    agent = {"type": "object",
             "properties": {"role": {"type": "string", "minLength": 1,
                                     "maxLength": _AGENT_ROLE_CHARS},
                            "private": {"type": "string", "maxLength": _AGENT_PRIVATE_CHARS}},
             "required": ["role", "private"], "additionalProperties": False}
    props = {"id": node_id, "kind": {"const": "conversation"},
             "pattern": {"enum": ["discuss", "debate", "share"]},
             "role": {"type": "string", "minLength": 1, "maxLength": caps.role_chars},
             "instruction": {"type": "string", "minLength": 1,
                             "maxLength": caps.instruction_chars},
             "agents": {"type": "array", "items": agent, "minItems": 2,
                        "maxItems": _SCHEMA_AGENTS},
             "rounds": {"type": "integer", "minimum": 1, "maximum": 6},
             "inputs": inputs}
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}


def _conversation_first(caps: SchemaCaps, node_id: dict[str, Any], inputs: dict[str, Any],
                        shapes: list[dict[str, Any]]) -> dict[str, Any]:
    """The nodes array where the first node may also be a conversation, and no other may."""
    first = {"anyOf": [*shapes, _conversation_shape(caps, node_id, inputs)]}
    return {"type": "array", "minItems": 1, "maxItems": caps.max_nodes, "prefixItems": [first],
            "items": {"anyOf": shapes}}


def _fixed_id_documents(tools: Collection[str], caps: SchemaCaps) -> dict[str, Any]:
    """Designs whose graph rules hold by construction: one document shape per node count k.

    Workers are `step1` .. `step{k-1}`; worker i reads at most one earlier worker (so no cycle,
    no undefined input, no repeated input); the last node is FINAL_ID and reads every worker
    (so it is the only sink).
    """
    docs = []
    for k in range(1, caps.max_nodes + 1):
        items = []
        for i in range(1, k):
            earlier = [f"step{j}" for j in range(1, i)]
            inputs = ({"type": "array", "items": {"enum": earlier}, "maxItems": 1} if earlier
                      else {"type": "array", "maxItems": 0})
            items.append({"anyOf": _node_shapes(tools, caps, {"const": f"step{i}"}, inputs)})
        workers = [f"step{j}" for j in range(1, k)]
        reads_all = {"type": "array", "prefixItems": [{"const": w} for w in workers],
                     "items": False, "minItems": len(workers), "maxItems": len(workers)}
        items.append({"anyOf": _node_shapes(tools, caps, {"const": FINAL_ID}, reads_all)})
        docs.append({
            "type": "object",
            "properties": {"nodes": {"type": "array", "prefixItems": items, "items": False,
                                     "minItems": k, "maxItems": k},
                           "final": {"const": FINAL_ID}},
            "required": ["nodes", "final"],
            "additionalProperties": False,
        })
    return {"anyOf": docs}


def design_schema(tools: Collection[str], caps: SchemaCaps, *,
                  fixed_ids: bool = False) -> dict[str, Any]:
    """JSON schema of a design for constrained decoding.

    Node shapes are a discriminated `anyOf` (an llm node has no `tool`; a tool node names one of
    `tools`), so a constrained model cannot write a contradictory node. Property order is the
    order the model writes them in.

    Args:
        tools: names a tool node may use.
        caps: size caps (see `caps_for_budget`).
        fixed_ids: for small models: node ids are `step1`, `step2`, ... and `answer` (the final
            node, reading every other node), and each step reads at most one earlier step, so
            every document the schema admits also passes `check_spec` (given the limits the caps
            were sized for). Capable models get free ids and the repair loop instead.
    """
    if fixed_ids:
        return _fixed_id_documents(tools, caps)
    node_id = {"type": "string", "pattern": NODE_ID_PATTERN}
    inputs = {"type": "array", "items": node_id, "maxItems": caps.max_inputs}
    shapes = _node_shapes(tools, caps, node_id, inputs)
    nodes = {"type": "array", "minItems": 1, "maxItems": caps.max_nodes,
             "items": {"anyOf": shapes}}
    if caps.conversations:
        nodes = _conversation_first(caps, node_id, inputs, shapes)
    return {
        "type": "object",
        "properties": {
            "nodes": nodes,
            "final": node_id,
        },
        "required": ["nodes", "final"],
        "additionalProperties": False,
    }
