"""The `Tool` protocol every tool implements, and a small base class for pydantic-typed inputs.

A tool has a name, a description, a JSON schema of its input (exported in the OpenAI tools
format by `openai_spec`), and `run(args) -> dict` returning JSON-able output or raising one of
ToolInputError (the model can fix its call), ToolExecutionError or ToolTimeoutError.
`arun` is the async form. This module knows nothing about sandboxes or particular tools.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from agentrt.core.errors import ToolInputError

__all__ = ["Tool", "TypedTool", "validate_input", "input_schema_of"]


@runtime_checkable
class Tool(Protocol):
    """One tool the workflow engine (or a model, through function calling) can call."""

    name: str
    description: str
    input_schema: dict

    def run(self, args: dict) -> dict:
        """Run with JSON `args`; return JSON-able output or raise a ToolError subclass."""
        ...

    async def arun(self, args: dict) -> dict:
        """Async `run`; cancelling the awaiting task stops the tool's work."""
        ...

    def openai_spec(self) -> dict:
        """The tool in the OpenAI tools format: {"type": "function", "function": {...}}."""
        ...


def _strip_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_titles(v) for k, v in node.items() if k != "title"}
    if isinstance(node, list):
        return [_strip_titles(v) for v in node]
    return node


def input_schema_of(model: type[BaseModel]) -> dict:
    """A compact JSON schema of a pydantic input model (titles removed, no extra keys allowed)."""
    schema = _strip_titles(model.model_json_schema())
    schema["additionalProperties"] = False
    return schema


def validate_input(model: type[BaseModel], args: Any) -> BaseModel:
    """Validate tool input, turning every problem into one readable ToolInputError.

    Raises:
        ToolInputError: `args` is not an object or breaks the schema; `details["errors"]` lists
            each problem as {"field", "message"}.
    """
    if not isinstance(args, dict):
        raise ToolInputError(f"tool input must be a JSON object, got {type(args).__name__}")
    try:
        return model.model_validate(args)
    except ValidationError as e:
        errors = [{"field": ".".join(str(p) for p in err["loc"]) or "(input)", "message": err["msg"]}
                  for err in e.errors()]
        text = "; ".join(f"{x['field']}: {x['message']}" for x in errors)
        raise ToolInputError(f"invalid input: {text}", errors=errors) from None


class TypedTool:
    """Base for tools whose input is a pydantic model (`Input`)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Input: ClassVar[type[BaseModel]]

    @property
    def input_schema(self) -> dict:
        """JSON schema of the input."""
        return input_schema_of(self.Input)

    def openai_spec(self) -> dict:
        """The tool in the OpenAI tools format."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.input_schema}}

    def run(self, args: dict) -> dict:  # pragma: no cover - subclasses implement
        raise NotImplementedError

    async def arun(self, args: dict) -> dict:
        """Default async form: run in a worker thread."""
        return await asyncio.to_thread(self.run, args)
