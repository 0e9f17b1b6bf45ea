"""Slow thinking: a model-designed workflow of experts, compiled to LangGraph and run in parallel.

Stages of a round (after HDFlow): reflect on the problem (`design.reflect`), design a typed
`WorkflowSpec` with a validation-and-repair loop (`design.design`), compile it to a
`StateGraph` and run its experts, independent ones concurrently (`compile`, `experts`,
`toolcall`), judge the answer (`judge.judge`); then another round or the best-answer selection
(`judge.select`). `graph` wires the stages into one checkpointed graph and runs or resumes it;
`view` turns a trace's steps back into the drawn workflow. See docs/SLOW_THINKING.md.

Names are loaded on first use, so reading a trace's workflow (`view`) does not import LangGraph.
This package knows nothing about traces beyond recording steps through the `Recorder`, nor
about routing between fast and slow thinking.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["build_slow_graph", "run_slow", "resume_slow", "slow_config", "ToolBox"]

_WHERE = {"build_slow_graph": "graph", "run_slow": "graph", "resume_slow": "graph",
          "slow_config": "graph", "ToolBox": "toolbox"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"agentrt.workflows.slow.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'agentrt.workflows.slow' has no attribute {name!r}")
