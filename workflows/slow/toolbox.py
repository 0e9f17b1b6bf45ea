"""The tools a slow solve may use, built on first use from the `agentrt.tools` registry.

`ToolBox` is a read-only mapping name -> tool. Its keys come from the registry without building
anything (designs are validated against them); a tool is built by `tools.get_tool` the first
time a node needs it, then reused by every solve of the runtime that owns the box (a box made
with no names is empty: designs then use LLM experts only). This module knows the registry's
names and nothing about what the tools do.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from agentrt import tools

__all__ = ["ToolBox"]


class ToolBox(Mapping[str, Any]):
    """Lazily built tools.

    Args:
        names: the tools to offer; every registered tool by default.
        **options: passed to `tools.get_tool` for each tool.
    """

    def __init__(self, names: Iterable[str] | None = None, **options: Any) -> None:
        self._given = None if names is None else tuple(sorted(names))
        self._options = options
        self._built: dict[str, Any] = {}
        self._lock = threading.Lock()

    @property
    def _names(self) -> tuple[str, ...]:
        if self._given is None:
            self._given = tuple(sorted(tools.TOOLS))
        return self._given

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        with self._lock:
            if name not in self._built:
                self._built[name] = tools.get_tool(name, **self._options)
            return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def close(self) -> None:
        """Release tools that hold resources (a pre-started sandbox helper, for instance)."""
        with self._lock:
            for tool in self._built.values():
                close = getattr(tool, "close", None)
                if callable(close):
                    close()
            self._built.clear()
