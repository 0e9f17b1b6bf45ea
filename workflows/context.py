"""What every graph node needs, handed in through LangGraph's runtime context.

Nodes receive the backend, the recorder and the prompt profile here instead of reading globals,
so a graph can be run with any backend and store (tests pass the scripted backend).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentrt.core.config import Limits
from agentrt.llm.base import ChatBackend
from agentrt.workflows.recorder import Recorder

__all__ = ["SolveContext"]


@dataclass
class SolveContext:
    """Parts of the runtime one solve uses.

    Attributes:
        backend: the chat engine.
        recorder: budgeted, recorded access to the backend and tools.
        profile: name of the prompt profile (`agentrt.workflows.profiles`: "compact", "full").
        limits: budgets and sizes for this solve.
        tools: tool name -> tool object (python, sympy), for slow thinking.
        extra: free-form options for a workflow (e.g. number of fast samples).
    """

    backend: ChatBackend
    recorder: Recorder
    profile: str = "full"
    limits: Limits = field(default_factory=Limits)
    tools: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
