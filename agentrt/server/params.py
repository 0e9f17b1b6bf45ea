"""From a well-formed wire request to a `Job`: model lookup, support checks, sampling, limits.

`Catalog` knows the served models (the three solver models and the backend's own model id).
The helpers here apply what both endpoints share: parameters the server cannot honour are
refused with 400 `unsupported_parameter` / `unsupported_value` (silently ignoring a penalty
or a logprobs request would return something the client did not ask for), limits from
`ServerConfig` are enforced with 400s naming the parameter, and OpenAI's defaults are applied
(temperature 1 for passthrough sampling). This module knows the wire models, the config and
the runtime's types; nothing about HTTP or threads.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agentrt.core.types import SamplingParams
from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError
from agentrt.server.jobs import SOLVER_MODELS
from agentrt.server.wire import _Sampling, model_object

__all__ = ["Catalog", "unsupported", "check_common", "token_limit", "sampling", "solver_options",
           "check_problem"]

_MAX_STOP_CHARS = 1000


class Catalog:
    """The models this server answers for.

    Args:
        backend_model: the backend's `model_id` (served as a plain passthrough chat).
        backend_name: the backend's registry name (reported as `owned_by`).
        created: Unix time reported for every model.
    """

    def __init__(self, backend_model: str, backend_name: str, created: int):
        self.backend_model = backend_model
        self.backend_name = backend_name
        self.created = created

    def mode(self, model: str) -> str | None:
        """The solve() mode for a solver model, None for the passthrough model; 404 otherwise."""
        if model in SOLVER_MODELS:
            return SOLVER_MODELS[model]
        if model == self.backend_model:
            return None
        raise APIError(404, f"The model `{model}` does not exist or you do not have access to "
                            f"it. Available: {', '.join(self.ids())}.", param="model",
                       code="model_not_found")

    def ids(self) -> list[str]:
        return [*SOLVER_MODELS, self.backend_model]

    def entry(self, model: str) -> dict[str, Any]:
        """The model object of one served model (404 if unknown)."""
        self.mode(model)
        owner = "agentrt" if model in SOLVER_MODELS else f"agentrt:{self.backend_name}"
        return model_object(model, self.created, owner)


def unsupported(param: str, message: str, value: bool = False) -> APIError:
    """A 400 for a parameter this server cannot honour."""
    return APIError(400, message, param=param,
                    code="unsupported_value" if value else "unsupported_parameter")


def check_common(req: _Sampling, config: ServerConfig) -> None:
    """Checks shared by chat and legacy completions."""
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(req, name):
            raise unsupported(name, f"'{name}' is not supported by this server; omit it or send 0.")
    if req.logit_bias:
        raise unsupported("logit_bias", "'logit_bias' is not supported by this server.")
    if (req.n or 1) > config.max_n:
        raise APIError(400, f"Invalid value for 'n': at most {config.max_n} choices per request.",
                       param="n", code="invalid_value")
    for s in req.stop_list:
        if not s or len(s) > _MAX_STOP_CHARS:
            raise APIError(400, f"Invalid value for 'stop': sequences must be 1 to "
                                f"{_MAX_STOP_CHARS} characters.", param="stop",
                           code="invalid_value")


def token_limit(value: int | None, param: str, default: int, config: ServerConfig) -> int:
    """The requested token limit, checked against the server's maximum."""
    if value is None:
        return min(default, config.max_tokens)
    if value > config.max_tokens:
        raise APIError(400, f"'{param}' is too large: {value}. This server supports at most "
                            f"{config.max_tokens} completion tokens.", param=param,
                       code="invalid_value")
    return value


def sampling(req: _Sampling, max_tokens: int) -> SamplingParams:
    """OpenAI sampling fields as `SamplingParams` (OpenAI's default temperature is 1)."""
    temperature = 1.0 if req.temperature is None else req.temperature
    top_p = 1.0 if req.top_p is None else req.top_p
    if top_p == 0.0:  # no probability mass but the top token: greedy
        temperature, top_p = 0.0, 1.0
    try:
        return SamplingParams(temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                              stop=req.stop_list, n=req.n or 1, seed=req.seed)
    except ValidationError as e:
        loc = e.errors()[0]["loc"]
        param = str(loc[0]) if loc else None
        where = f" for '{param}'" if param is not None else ""
        raise APIError(400, f"Invalid value{where}: {e.errors()[0]['msg']}.", param=param,
                       code="invalid_value") from None


def solver_options(req: _Sampling) -> dict[str, Any]:
    """Options a solve takes from the request (only what the client set).

    A solve samples each of its LLM calls its own way: `top_p` and `seed` cannot reach them,
    so a value other than the default is refused rather than dropped.
    """
    if req.top_p is not None and req.top_p != 1.0:
        raise unsupported("top_p", "The solver models do not take 'top_p'; omit it or send 1 "
                                   "(it is for the backend model).")
    if req.seed is not None:
        raise unsupported("seed", "The solver models do not take 'seed'; omit it "
                                  "(it is for the backend model).")
    return {"temperature": req.temperature} if req.temperature is not None else {}


def check_problem(problem: str, limit: int, param: str) -> str:
    """The solver's problem text must be non-empty and within the runtime's limit."""
    if not problem.strip():
        raise APIError(400, "The solver models need a non-empty user message to solve.",
                       param=param, code="invalid_value")
    if len(problem) > limit:
        raise APIError(400, f"The problem is {len(problem)} characters; the limit is {limit}.",
                       param=param, code="string_above_max_length")
    return problem
