"""The one error tree of agentrt.

Every error the project raises on purpose derives from `AgentrtError`. Each carries a short
machine-readable `code` (the server turns it into an OpenAI error body in one place) and a
one-line human message. Exceptions never log themselves; callers decide.
"""

from __future__ import annotations

from typing import Any

from agentrt.core.types import Outcome

__all__ = [
    "AgentrtError",
    "ConfigError",
    "InvalidInputError",
    "BackendError",
    "BackendUnavailableError",
    "ModelNotFoundError",
    "BackendRequestError",
    "ParseError",
    "ToolError",
    "ToolInputError",
    "ToolExecutionError",
    "ToolTimeoutError",
    "SandboxUnavailableError",
    "LimitExceededError",
    "StoreError",
    "NotFoundError",
    "WorkflowError",
    "CancelledError",
    "first_problem",
]


class AgentrtError(Exception):
    """Base of every agentrt error. `code` is a stable identifier for clients and the API."""

    code = "agentrt_error"

    def __init__(self, message: str, **details):
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(AgentrtError):
    """Invalid settings, unknown backend or mode, malformed config file."""

    code = "config_error"


class InvalidInputError(AgentrtError):
    """A caller's input is invalid (empty problem, too long, malformed rows or requests)."""

    code = "invalid_input"


class BackendError(AgentrtError):
    """A chat backend failed."""

    code = "backend_error"


class BackendUnavailableError(BackendError):
    """The backend cannot be reached or its engine is not installed."""

    code = "backend_unavailable"


class ModelNotFoundError(BackendError):
    """The named model is neither known, nor a local directory, nor reachable on a hub."""

    code = "model_not_found"


class BackendRequestError(BackendError):
    """The backend rejected a request (bad parameters, context too long, 4xx from a server)."""

    code = "backend_request_error"

    def __init__(self, message: str, status: int | None = None, **details):
        super().__init__(message, status=status, **details)
        self.status = status


class ParseError(AgentrtError):
    """Model output could not be parsed; `raw` keeps the text that failed."""

    code = "parse_error"

    def __init__(self, message: str, raw: str = "", **details):
        super().__init__(message, raw=raw, **details)
        self.raw = raw


class ToolError(AgentrtError):
    """A tool call failed. Subclasses say whether the model can fix it."""

    code = "tool_error"


class ToolInputError(ToolError):
    """The tool input is invalid: the model can read the message and fix its call."""

    code = "tool_input_error"


class ToolExecutionError(ToolError):
    """The tool ran and failed (non-zero exit, exception, resource limit)."""

    code = "tool_execution_error"


class ToolTimeoutError(ToolError):
    """The tool ran past its time limit and was killed."""

    code = "tool_timeout"


class SandboxUnavailableError(ToolError):
    """The sandbox cannot provide the isolation that was asked for (strict mode)."""

    code = "sandbox_unavailable"


class LimitExceededError(AgentrtError):
    """A budget or size limit was exceeded; `limit` names which one.

    `partial` is the best outcome of the solve so far: the path that ran out of budget sets it
    on the way out (None until then, and for limits outside a solve).
    """

    code = "limit_exceeded"

    def __init__(self, message: str, limit: str = "", *, partial: Outcome | None = None,
                 **details):
        super().__init__(message, limit=limit, **details)
        self.limit = limit
        self.partial: Outcome | None = partial


class StoreError(AgentrtError):
    """The trace store failed (cannot open, migrate or write)."""

    code = "store_error"


class NotFoundError(AgentrtError):
    """A trace, dataset, model version or run id does not exist."""

    code = "not_found"


class WorkflowError(AgentrtError):
    """A workflow design is invalid or its graph failed in a way no repair could fix."""

    code = "workflow_error"


class CancelledError(AgentrtError):
    """A solve was cancelled by its caller (client disconnect, shutdown)."""

    code = "cancelled"


def first_problem(error: Any, where: str) -> str:
    """The first problem of a pydantic `ValidationError` as one line, `<field.path>: <message>`
    (`where` when the problem is the whole value), for one-line `ConfigError`s and the like.

    Example:
        >>> from pydantic import BaseModel, ValidationError
        >>> class Limits(BaseModel):
        ...     rounds: int
        >>> try:
        ...     Limits(rounds="many")
        ... except ValidationError as e:
        ...     first_problem(e, "limits")
        'rounds: Input should be a valid integer, unable to parse string as an integer'
    """
    first = error.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ())) or where
    return f"{loc}: {first['msg']}"
