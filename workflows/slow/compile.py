"""Compile a validated `WorkflowSpec` into a LangGraph `StateGraph`, and run it as a round's stage.

Edges come from each node's `inputs`: a node without inputs starts from START (fan-out), a
node with inputs waits for all of them (a join, fan-in), the final node ends the graph. Nodes of
one superstep run concurrently (LangGraph runs sync nodes in threads; `max_concurrency` caps
them); a conversation node runs its own bounded subgraph inside its node
(`agentrt.workflows.slow.conversation`). Graph node names are the spec ids prefixed with `n_`,
so no id can collide with a state key or a reserved LangGraph name.

`execute` runs the compiled workflow as a subgraph of the slow-solve graph, passing its config
on: the subgraph's checkpoints live in the same thread under the execute task's namespace, so a
resumed solve re-enters the workflow where it stopped and does not re-run finished experts.
This module knows the spec and the graph library, not prompts.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime

from agentrt.workflows.context import SolveContext
from agentrt.workflows.slow.conversation import make_conversation
from agentrt.workflows.slow.experts import make_expert
from agentrt.workflows.slow.state import SlowState, WorkflowState
from agentrt.workflows.spec import WorkflowSpec

__all__ = ["compile_spec", "graph_node", "execute"]


def graph_node(node_id: str) -> str:
    """The LangGraph node name of a spec node."""
    return f"n_{node_id}"


def compile_spec(spec: WorkflowSpec) -> Any:
    """Build the runnable graph of a design (which must have passed `check_spec`).

    Returns:
        A compiled graph; invoke it with a `WorkflowState` and `context=SolveContext`.
    """
    g = StateGraph(WorkflowState, context_schema=SolveContext)
    for node in spec.nodes:
        make = make_conversation if node.kind == "conversation" else make_expert
        g.add_node(graph_node(node.id), make(node, final=node.id == spec.final))
    for node in spec.nodes:
        name = graph_node(node.id)
        if not node.inputs:
            g.add_edge(START, name)
        elif len(node.inputs) == 1:
            g.add_edge(graph_node(node.inputs[0]), name)
        else:
            g.add_edge([graph_node(i) for i in node.inputs], name)  # waits for every input
    g.add_edge(graph_node(spec.final), END)
    return g.compile()


def recursion_limit(spec: WorkflowSpec) -> int:
    """Supersteps the workflow needs (its depth) plus a small margin."""
    return len(spec.layers()) + 3


def execute(state: SlowState, runtime: Runtime[SolveContext], config: RunnableConfig
            ) -> dict[str, Any]:
    """Run the round's design; record a `workflow` stage with every node's status."""
    ctx = runtime.context
    rnd = int(state.get("round", 1))
    spec = WorkflowSpec.model_validate(state["spec"])
    started = time.perf_counter()
    inner_config: RunnableConfig = {**config, "recursion_limit": recursion_limit(spec),
                                    "max_concurrency": ctx.limits.max_fan_out}
    result = compile_spec(spec).invoke(
        {"problem": state["problem"], "reflection": state.get("reflection", ""), "round": rnd,
         "outputs": {}},
        config=inner_config, context=ctx,
    )
    outputs: dict[str, Any] = result.get("outputs", {})
    final = outputs.get(spec.final) or {}
    answer = str(final.get("answer", "") or "") if final.get("status") == "ok" else ""
    ctx.recorder.stage(
        "workflow",
        {"nodes": {k: v.get("status") for k, v in outputs.items()}, "final": spec.final,
         "answer": answer, "edges": spec.edges, "layers": spec.layers()},
        status="ok" if all(v.get("status") == "ok" for v in outputs.values()) else "failed",
        round=rnd, latency_s=time.perf_counter() - started,
    )
    return {"outputs": outputs, "answer": answer}
