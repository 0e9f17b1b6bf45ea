"""agentrt: agentic problem solving with hybrid fast/slow thinking and trainable LLM backends.

    >>> from agentrt import solve
    >>> solve("What is 17*23+5?", mode="fast").answer  # doctest: +SKIP
    '396'

Heavy parts (torch, transformers, langgraph) load on first use, so importing is cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["solve", "Runtime", "__version__"]

if TYPE_CHECKING:
    from agentrt.runtime import Runtime
    from agentrt.core.types import Solution


def solve(problem: str, mode: str = "auto", **settings: Any) -> "Solution":
    """Solve one problem with the default runtime. See `agentrt.runtime.solve`."""
    from agentrt.runtime import solve as _solve  # lazy: import agentrt stays cheap

    return _solve(problem, mode=mode, **settings)


def __getattr__(name: str) -> Any:
    if name == "Runtime":
        from agentrt.runtime import Runtime  # lazy: import agentrt stays cheap

        return Runtime
    raise AttributeError(name)
