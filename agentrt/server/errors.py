"""The one place where exceptions become OpenAI error bodies and HTTP status codes.

Every error a client sees has the body `{"error": {"message", "type", "param", "code"}}`.
`APIError` is what the server raises for problems it finds itself (bad parameters, limits,
auth); `to_api_error` maps agentrt's error tree and everything else onto it, and
`install_handlers` makes FastAPI use it for validation errors (400, not FastAPI's 422),
unknown routes, wrong methods and unexpected exceptions (500, logged with the traceback).
Messages never show a library's source paths (`strip_source_paths`): a backend's
"[04:07:18] /project/cpp/x.cc:94: Unsupported type" reaches the client as "Unsupported type".
The official SDKs retry every 5xx unless told otherwise, so errors say whether a retry can help
(`x-should-retry`): not for a 500 (a server fault repeats) or a 504 (the deadline ran out), yes,
after `Retry-After`, for a 503 that passes (a backend or database away, a worker shutting down).
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
# The `reason` detail of a BackendRequestError for a prompt longer than the model's context.
_CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


class APIError(Exception):
    """An error response: HTTP status, OpenAI error fields and extra headers.

    `retry` sets `x-should-retry` (true or false; left out when None). A retryable error is
    answered with `Retry-After` too (`install_handlers`).
    """

    def __init__(self, status: int, message: str, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None, retry: bool | None = None):
        message = strip_source_paths(message)
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        if retry is not None:
            self.headers["x-should-retry"] = "true" if retry else "false"

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str, param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    """The OpenAI error object."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def to_api_error(exc: BaseException, input_param: str = "messages") -> APIError:
    """Map any exception onto the error a client should see.

    Args:
        exc: what was raised while serving the request.
        input_param: the request's input parameter (`messages`, or `prompt` for legacy
            completions), named when the input is longer than the model's context.
    """
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, AgentrtError):
        return _from_agentrt(exc, input_param)
    log.error("unexpected error while serving a request", exc_info=exc)
    return APIError(500, "The server had an error while processing your request.",
                    type="server_error", code="internal_error", retry=False)


def _from_agentrt(exc: AgentrtError, input_param: str) -> APIError:
    msg = exc.message
    if isinstance(exc, InvalidInputError):
        return APIError(400, msg, code=exc.code)
    if isinstance(exc, ConfigError):  # the server's settings, not the request: a server fault
        log.error("configuration error while serving a request: %s", msg)
        return APIError(500, msg, type="server_error", code=exc.code, retry=False)
    if isinstance(exc, LimitExceededError):
        return APIError(400, msg, code="limit_exceeded", param=exc.limit or None)
    if isinstance(exc, BackendRequestError):
        if exc.details.get("reason") == _CONTEXT_LENGTH_EXCEEDED:
            return APIError(400, msg, param=input_param, code=_CONTEXT_LENGTH_EXCEEDED)
        if exc.status is None or 400 <= exc.status < 500:
            return APIError(400, msg, code=exc.code)
        return APIError(502, msg, type="server_error", code=exc.code)
    if isinstance(exc, ModelNotFoundError):  # the backend lacks its model: no retry brings it
        return APIError(503, msg, type="server_error", code=exc.code, retry=False)
    if isinstance(exc, (BackendUnavailableError, StoreError)):
        return APIError(503, msg, type="server_error", code=exc.code, retry=True)
    if isinstance(exc, NotFoundError):
        return APIError(404, msg, code=exc.code)
    if isinstance(exc, CancelledError):
        return APIError(499, msg, code=exc.code)
    return APIError(500, msg, type="server_error", code=exc.code, retry=False)


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
    """A 400 from pydantic's errors: the first one, naming the parameter like OpenAI does.

    An error about the whole body names no parameter. FastAPI hands the raw bytes on when the
    Content-Type is not JSON (it never parses those, which keeps plain HTML forms from posting
    here), so bytes where the object belongs mean a wrong or missing Content-Type.
    """
    if not errors:
        return APIError(400, "The request body is invalid.")
    first = errors[0]
    kind = str(first.get("type", ""))
    param = _param(tuple(first.get("loc", ())))
    if kind in ("json_invalid", "json_type"):
        return APIError(400, "We could not parse the JSON body of your request. "
                             "(The body must be a valid JSON object.)", code="invalid_json")
    if param is None and isinstance(first.get("input"), (bytes, bytearray)):
        return APIError(400, "Content-Type must be application/json (send the header "
                             "'Content-Type: application/json' with a JSON body).",
                        code="invalid_content_type")
    if kind == "model_attributes_type" and param is None:
        return APIError(400, "The request body must be a JSON object.", code="invalid_json")
    if kind == "missing":
        if param is None:
            return APIError(400, "The request body is empty; send a JSON object.",
                            code="invalid_json")
        return APIError(400, f"Missing required parameter: '{param}'.", param=param,
                        code="missing_required_parameter")
    msg = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    where = f" for '{param}'" if param is not None else ""
    if kind == "unsupported_value":
        return APIError(400, f"Unsupported value{where}: {msg}.", param=param,
                        code="unsupported_value")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error":
        code = "invalid_type" if kind != "literal_error" else "invalid_value"
        return APIError(400, f"Invalid type or value{where}: {msg}.", param=param, code=code)
    return APIError(400, f"Invalid value{where}: {msg}.", param=param, code="invalid_value")


def install_handlers(app: Any, retry_after_s: int = 1) -> None:
    """Route FastAPI's and Starlette's errors through `to_api_error` and `validation_error`.

    Args:
        app: the FastAPI app.
        retry_after_s: the `Retry-After` of errors that invite a retry.
    """
    from fastapi.exceptions import RequestValidationError  # heavy: fastapi
    from starlette.exceptions import HTTPException as StarletteHTTPException  # heavy: starlette
    from starlette.responses import Response  # heavy: starlette

    def respond(err: APIError) -> Response:
        headers = dict(err.headers)
        if headers.get("x-should-retry") == "true":
            headers.setdefault("Retry-After", str(retry_after_s))
        return Response(dumps(err.body()), status_code=err.status, headers=headers,
                        media_type="application/json")

    async def on_api_error(request: Any, exc: Exception) -> Response:
        legacy = request.url.path.endswith("/v1/completions")
        return respond(to_api_error(exc, "prompt" if legacy else "messages"))

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
