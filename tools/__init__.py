"""Symbolic tools for slow thinking: the `Tool` protocol, the registry, and the process sandbox.

    >>> from tools import get_tool
    >>> get_tool("python").run({"code": "print(sum(range(10)))"})["stdout"]  # doctest: +SKIP
    '45\\n'

Tools are registered by name in `TOOLS` ("module:attribute") and loaded lazily; adding a tool
is one new module plus one line there. Every tool that runs model-written text does so in the
sandbox (`agentrt.tools.sandbox`). This package may import agentrt.core.types, agentrt.core.errors and
agentrt.core.config, never the workflow engine, the runtime or the CLI.
"""

from __future__ import annotations

import importlib
from typing import Any

from agentrt.core.errors import ConfigError
from agentrt.tools.base import Tool
from agentrt.tools.sandbox import IsolationInfo, Sandbox, SandboxLimits, SandboxResult, isolation_info

__all__ = ["Tool", "TOOLS", "get_tool", "list_tools", "Sandbox", "SandboxLimits", "SandboxResult",
           "IsolationInfo", "isolation_info"]

# name -> "module:attribute"
TOOLS: dict[str, str] = {
    "python": "agentrt.tools.python_tool:PythonTool",
    "sympy": "agentrt.tools.sympy_tool:SympyTool",
}


def get_tool(name: str, **options: Any) -> Tool:
    """Build a tool by registry name.

    Args:
        name: one of `TOOLS`.
        **options: constructor options of that tool (sandbox, strict, limits, ...).

    Raises:
        ConfigError: unknown tool name or option.
    """
    target = TOOLS.get(name)
    if target is None:
        raise ConfigError(f"unknown tool {name!r}; choose one of: {', '.join(sorted(TOOLS))}")
    module_name, attr = target.split(":")
    cls = getattr(importlib.import_module(module_name), attr)
    try:
        return cls(**options)
    except TypeError as e:
        raise ConfigError(f"bad options for tool {name!r}: {e}") from None


def list_tools(**options: Any) -> list[Tool]:
    """Every registered tool, built with the same options (for example a shared sandbox)."""
    return [get_tool(name, **options) for name in TOOLS]
