"""The one place where exceptions become OpenAI error bodies and HTTP status codes.

Every error a client sees has the body `{"error": {"message", "type", "param", "code"}}`.
`APIError` is what the server raises for problems it finds itself (bad parameters, limits,
auth); `to_api_error` maps agentrt's error tree and everything else onto it, and
`install_handlers` makes FastAPI use it for validation errors (400, not FastAPI's 422),
unknown routes, wrong methods and unexpected exceptions (500, logged with the traceback).
Messages never show a library's source paths (`strip_source_paths`): a backend's
"[04:07:18] /project/cpp/x.cc:94: Unsupported type" reaches the client as "Unsupported type".
This module knows the error tree and HTTP, nothing about models or solving.
"""

from __future__ import annotations

import logging
from typing import Any

from agentrt.core.display import strip_source_paths
from agentrt.core.errors import (
    AgentrtError,
    BackendRequestError,
    BackendUnavailableError,
    CancelledError,
    ConfigError,
    InvalidInputError,
    LimitExceededError,
    ModelNotFoundError,
    NotFoundError,
    StoreError,
)
from agentrt.server.wire import dumps

__all__ = ["APIError", "to_api_error", "error_body", "validation_error", "install_handlers"]

log = logging.getLogger("agentrt.server")

_TYPE_TAGS = {"str", "int", "float", "bool", "none", "list", "dict"}


class APIError(Exception):
    """An error response: HTTP status, OpenAI error fields and extra headers."""

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None):
        message = strip_source_paths(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def to_api_error(exc: BaseException) -> APIError:
    """Map any exception onto the error a client should see."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, AgentrtError):
        return _from_agentrt(exc)
    log.error("unexpected error while serving a request", exc_info=exc)
    return APIError(500, "The server had an error while processing your request.",
                    type="server_error", code="internal_error")


def _from_agentrt(exc: AgentrtError) -> APIError:
    msg = exc.message
    if isinstance(exc, (InvalidInputError, ConfigError)):
        return APIError(400, msg, code=exc.code)
    if isinstance(exc, LimitExceededError):
        return APIError(400, msg, code="limit_exceeded", param=exc.limit or None)
    if isinstance(exc, BackendRequestError):
        if exc.status is None or 400 <= exc.status < 500:
            return APIError(400, msg, code=exc.code)
        return APIError(502, msg, type="server_error", code=exc.code)
    if isinstance(exc, (BackendUnavailableError, ModelNotFoundError)):
        return APIError(503, msg, type="server_error", code=exc.code)
    if isinstance(exc, NotFoundError):
        return APIError(404, msg, code=exc.code)
    if isinstance(exc, StoreError):
        return APIError(503, msg, type="server_error", code=exc.code)
    if isinstance(exc, CancelledError):
        return APIError(499, msg, code=exc.code)
    return APIError(500, msg, type="server_error", code=exc.code)


def _param(loc: tuple[Any, ...]) -> str | None:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif isinstance(item, str):
            if item == "body" and not parts:
                continue
            if item in _TYPE_TAGS or not item.replace("_", "").isalnum() or item[0].isupper():
                continue  # a union member or validator tag, not a field
            parts.append(("." if parts else "") + item)
    return "".join(parts) or None


def validation_error(errors: list[dict[str, Any]]) -> APIError:
    """A 400 from pydantic's errors: the first one, naming the parameter like OpenAI does."""
    if not errors:
        return APIError(400, "The request body is invalid.")
    first = errors[0]
    kind = str(first.get("type", ""))
    param = _param(tuple(first.get("loc", ())))
    if kind in ("json_invalid", "json_type"):
        return APIError(400, "We could not parse the JSON body of your request. "
                             "(The body must be a valid JSON object.)", code="invalid_json")
    if kind == "model_attributes_type" and param is None:
        return APIError(400, "The request body must be a JSON object.", code="invalid_json")
    if kind == "missing":
        return APIError(400, f"Missing required parameter: '{param}'.", param=param,
                        code="missing_required_parameter")
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        code = "invalid_type" if kind != "literal_error" else "invalid_value"
        return APIError(400, f"Invalid type or value for '{param}': {msg}.", param=param, code=code)
    return APIError(400, f"Invalid value for '{param}': {msg}.", param=param, code="invalid_value")


def install_handlers(app: Any) -> None:
    """Route FastAPI's and Starlette's errors through `to_api_error` and `validation_error`."""
    from fastapi.exceptions import RequestValidationError  # heavy: fastapi
    from starlette.exceptions import HTTPException as StarletteHTTPException  # heavy: starlette
    from starlette.responses import Response  # heavy: starlette

    def respond(err: APIError) -> Response:
        return Response(dumps(err.body()), status_code=err.status, headers=err.headers,
                        media_type="application/json")

    async def on_api_error(_request: Any, exc: Exception) -> Response:
        return respond(to_api_error(exc))

    async def on_validation(_request: Any, exc: RequestValidationError) -> Response:
        return respond(validation_error(list(exc.errors())))

    async def on_http(request: Any, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            err = APIError(404, f"Invalid URL ({request.method} {request.url.path})")
        elif exc.status_code == 405:
            err = APIError(405, f"Method {request.method} is not allowed on {request.url.path}",
                           code="method_not_allowed", headers=dict(exc.headers or {}))
        elif exc.status_code == 400:
            err = APIError(400, "We could not parse the JSON body of your request.",
                           code="invalid_json")
        else:
            kind = "server_error" if exc.status_code >= 500 else "invalid_request_error"
            err = APIError(exc.status_code, str(exc.detail), type=kind)
        return respond(err)

    app.add_exception_handler(APIError, on_api_error)
    app.add_exception_handler(AgentrtError, on_api_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_api_error)
