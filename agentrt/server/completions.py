"""`POST /v1/completions` (the legacy text API): prompts as a `Job`, results as text objects.

The backend protocol is chat-only, so each prompt runs as one user message of the passthrough
model (the chat template is applied); a list of prompts becomes one batched backend call, and
choice indexes run prompt by prompt (`prompt_index * n + k`), as OpenAI numbers them. For the
solver models each prompt is a problem. Token-id prompts, `suffix`, `logprobs` and a `best_of`
above `n` need things this server does not have and are refused with 400.
This module knows the wire models and the job; running it and HTTP are elsewhere.
"""

from __future__ import annotations

import uuid
from typing import Any

from agentrt.server.config import ServerConfig
from agentrt.server.errors import APIError
from agentrt.server.jobs import ChoiceResult, Job, Unit
from agentrt.server.params import (Catalog, check_common, check_problem, sampling,
                                   solver_options, token_limit, unsupported)
from agentrt.server.wire import CompletionRequest, text_chunk, text_response, usage_chunk
from agentrt.core.types import ChatRequest, Message

__all__ = ["build_completion_job", "TextFormat"]

LEGACY_DEFAULT_MAX_TOKENS = 16  # OpenAI's default for /v1/completions


def _prompts(req: CompletionRequest, config: ServerConfig) -> list[str]:
    prompt = req.prompt
    if isinstance(prompt, str):
        prompts = [prompt]
    elif all(isinstance(p, str) for p in prompt):
        prompts = list(prompt)
    else:
        raise unsupported("prompt", "Token-id prompts are not supported; send text.", value=True)
    if len(prompts) > config.max_messages:
        raise APIError(400, f"Too many prompts: {len(prompts)}; the limit is "
                            f"{config.max_messages}.", param="prompt", code="array_above_max_length")
    for i, p in enumerate(prompts):
        if len(p) > config.max_message_chars:
            raise APIError(400, f"Prompt {i} is {len(p)} characters; the limit is "
                                f"{config.max_message_chars}.", param="prompt",
                           code="string_above_max_length")
    return prompts


def build_completion_job(req: CompletionRequest, catalog: Catalog, config: ServerConfig,
                         max_problem_chars: int) -> Job:
    """Validate a legacy completion request and turn it into a `Job`.

    Raises:
        APIError: 404 for an unknown model, 400 for unsupported or out-of-limit parameters.
    """
    mode = catalog.mode(req.model)
    check_common(req, config)
    if req.suffix:
        raise unsupported("suffix", "'suffix' (insertion) is not supported by this server.")
    if req.logprobs is not None:
        raise unsupported("logprobs", "'logprobs' is not supported by this server.")
    n = req.n or 1
    if req.best_of is not None and req.best_of != n:
        raise unsupported("best_of", "'best_of' must equal 'n': ranking candidates needs "
                                     "logprobs, which this server does not compute.", value=True)
    prompts = _prompts(req, config)
    if (n * len(prompts)) > config.max_n * 4:
        raise APIError(400, "Too many choices: prompts times n exceeds "
                            f"{config.max_n * 4}.", param="n", code="invalid_value")
    common = dict(model=req.model, mode=mode, n=n, stop=req.stop_list,
                  stream=bool(req.stream), include_usage=req.include_usage)
    if mode is None:
        params = sampling(req, token_limit(req.max_tokens, "max_tokens",
                                           LEGACY_DEFAULT_MAX_TOKENS, config))
        units = [Unit(request=ChatRequest(messages=[Message(role="user", content=p)],
                                          params=params), prefix=p if req.echo else "")
                 for p in prompts]
        return Job(units=units, **common)
    for i, p in enumerate(prompts):
        check_problem(p, max_problem_chars, "prompt")
    limit = None if req.max_tokens is None else token_limit(req.max_tokens, "max_tokens", 0, config)
    units = [Unit(problem=p, prefix=p if req.echo else "") for p in prompts]
    return Job(units=units, solve_options=solver_options(req), max_tokens=limit,
               tags={"source": "api", "api_model": req.model},
               trace_ids=[uuid.uuid4().hex for _ in range(n * len(prompts))], **common)


class TextFormat:
    """Legacy text completion objects and chunks for one job (no reasoning: it has no field)."""

    prefix = "cmpl-"
    chunk_object = "text_completion"

    def body(self, rid: str, created: int, job: Job, choices: list[ChoiceResult],
             usage: dict[str, int]) -> dict[str, Any]:
        return text_response(rid, created, job.model, [vars(c) for c in choices], usage)

    def opening(self, rid: str, created: int, job: Job) -> list[dict[str, Any]]:
        return []

    def text(self, rid: str, created: int, job: Job, index: int, field: str,
             text: str) -> dict[str, Any] | None:
        if field != "content":
            return None
        return text_chunk(rid, created, job.model, index, text, with_usage_field=job.include_usage)

    def finish(self, rid: str, created: int, job: Job, choice: ChoiceResult) -> dict[str, Any]:
        return text_chunk(rid, created, job.model, choice.index, "", choice.finish_reason,
                          with_usage_field=job.include_usage)

    def usage(self, rid: str, created: int, job: Job, usage: dict[str, int]) -> dict[str, Any]:
        return usage_chunk(rid, created, job.model, self.chunk_object, usage)

    def replay(self, body: dict[str, Any], job: Job) -> list[dict[str, Any]]:
        """A stored text_completion as the chunks a stream of it would have had."""
        rid, created = body["id"], body["created"]
        chunks = []
        for c in body["choices"]:
            if c["text"]:
                chunks.append(self.text(rid, created, job, c["index"], "content", c["text"]))
            chunks.append(text_chunk(rid, created, job.model, c["index"], "", c["finish_reason"],
                                     with_usage_field=job.include_usage))
        if job.include_usage:
            chunks.append(self.usage(rid, created, job, body["usage"]))
        return chunks
