"""What one API request asks the runtime to do, and the blocking work that does it.

A `Job` is a validated request in the runtime's terms: solver or passthrough, the units to run
(one conversation for chat, one per prompt for legacy completions), `n` choices per unit, stop
sequences and streaming switches. `tasks()` turns it into blocking callables, one per thread:
one `solve()` per solver choice, one `chat`/`chat_batch` call for a non-streamed passthrough, one
`stream()` per streamed passthrough choice. Each reports text as it appears to a `Sink` and
returns its finished choices, usage and trace ids. Concurrent `chat()` and `stream()` calls are
what the hf backend's decode worker batches continuously.

This module knows the runtime, the backend protocol and the trace store's `start_trace`; it knows
nothing about HTTP, SSE or the OpenAI wire format.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from agentrt.llm.base import cancel_on
from agentrt.core.types import ChatRequest, ChatResponse, Usage

__all__ = ["SOLVER_MODELS", "Unit", "Job", "ChoiceResult", "Part", "Sink", "TraceIdStore",
           "tasks", "cut_at_stop", "StopFilter", "describe_step", "choice_seed"]

#: Client-visible solver model -> solve() mode.
SOLVER_MODELS: dict[str, str] = {"agentrt-auto": "auto", "agentrt-fast": "fast",
                                 "agentrt-slow": "slow", "agentrt-team": "team"}


@dataclass
class Unit:
    """One conversation to answer: a backend request (passthrough) or a problem (solver)."""

    request: ChatRequest | None = None
    problem: str = ""
    context: str | None = None
    prefix: str = ""  # legacy `echo`: the prompt, put before each choice's text


@dataclass
class Job:
    """A validated request, in the runtime's terms."""

    model: str
    mode: str | None  # a solve() mode, or None for passthrough
    units: list[Unit]
    n: int = 1
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    solve_options: dict[str, Any] = field(default_factory=dict)
    max_tokens: int | None = None  # solver: caps each LLM call of the solve
    tags: dict[str, str] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)  # solver: one per choice, preassigned

    @property
    def choices(self) -> int:
        return len(self.units) * self.n


@dataclass
class ChoiceResult:
    index: int
    text: str
    finish_reason: str
    reasoning: str = ""


@dataclass
class Part:
    """What one task produced."""

    choices: list[ChoiceResult]
    usage: Usage
    trace_ids: list[str] = field(default_factory=list)


class Sink(Protocol):
    def __call__(self, index: int, field: str, text: str) -> None:
        """Text for choice `index` (`field` is "content" or "reasoning_content")."""


Task = Callable[[Sink, threading.Event], Part]

_preset = threading.local()


class TraceIdStore:
    """A trace store whose next `start_trace` in this thread uses a preassigned id.

    The server names a trace before its solve starts, so the id can go into the response id and
    header of a stream before the first event. Everything else is the wrapped store's.
    """

    def __init__(self, store: Any):
        self._store = store

    def start_trace(self, **kwargs: Any) -> str:
        preset = getattr(_preset, "trace_id", None)
        if preset is not None:
            _preset.trace_id = None
            kwargs["trace_id"] = preset
        return self._store.start_trace(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Cut `text` before the earliest stop sequence; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


class StopFilter:
    """Streaming stop sequences: holds back text that might be the start of one."""

    def __init__(self, stop: list[str]):
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.buf = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Text safe to emit now, and whether a stop sequence was hit (then stop reading)."""
        self.buf += piece
        text, hit = cut_at_stop(self.buf, self.stop)
        if hit:
            self.buf = ""
            return text, True
        if len(self.buf) <= self.hold:
            return "", False
        out, self.buf = self.buf[: len(self.buf) - self.hold], self.buf[len(self.buf) - self.hold:]
        return out, False

    def flush(self) -> str:
        out, self.buf = self.buf, ""
        return out


def describe_step(step: Any, limit: int) -> str:
    """One progress line (or block) for a trace step, streamed as reasoning content."""
    label = f"{step.node}/{step.name}" if getattr(step, "node", None) else step.name
    if step.status != "ok" or step.error:
        body = f"{step.status}: {step.error or ''}"
    elif step.kind == "llm":
        body = str(step.outputs.get("text", ""))
    elif step.kind == "tool":
        out = step.outputs
        body = json.dumps({k: out[k] for k in ("result", "stdout", "stderr", "exit_code")
                           if k in out and out[k] not in ("", None)}, ensure_ascii=False, default=str)
    else:
        body = json.dumps(step.outputs, ensure_ascii=False, default=str)
    if len(body) > limit:
        body = body[:limit] + " …"
    kind = "" if step.kind == "llm" else f"{step.kind} "
    return f"[{kind}{label}] {body.strip()}\n"


def tasks(job: Job, runtime: Any, step_chars: int) -> list[Task]:
    """The blocking callables that carry out `job`, one per thread."""
    if job.mode is not None:
        rt = _runtime_for(runtime, job.max_tokens)
        return [_solve_task(rt, job, u, j, step_chars) for u in range(len(job.units))
                for j in range(job.n)]
    backend = runtime.backend
    if not job.stream:
        return [lambda sink, cancel: _chat_all(backend, job, cancel)]
    return [_stream_task(backend, job, u, j) for u in range(len(job.units)) for j in range(job.n)]


def _runtime_for(runtime: Any, max_tokens: int | None) -> Any:
    if max_tokens is None or max_tokens >= runtime.settings.limits.max_tokens_per_call:
        return runtime
    limits = runtime.settings.limits.model_copy(update={"max_tokens_per_call": max_tokens})
    rt = copy.copy(runtime)  # shares backend, store and caches; only the budgets differ
    rt.settings = runtime.settings.model_copy(update={"limits": limits})
    return rt


def _solve_task(runtime: Any, job: Job, u: int, j: int, step_chars: int) -> Task:
    index = u * job.n + j
    unit = job.units[u]

    def run(sink: Sink, cancel: threading.Event) -> Part:
        steps: list[str] = []
        cut = False  # an LLM call of the solve stopped at its token limit

        def on_step(step: Any) -> None:
            nonlocal cut
            cut |= step.kind == "llm" and step.outputs.get("finish_reason") == "length"
            text = describe_step(step, step_chars)
            steps.append(text)
            sink(index, "reasoning_content", text)

        _preset.trace_id = job.trace_ids[index]
        try:
            sol = runtime.solve(unit.problem, mode=job.mode, context=unit.context,
                                tags=job.tags, on_step=on_step, cancel=cancel,
                                **job.solve_options)
        finally:
            _preset.trace_id = None
        answer, _ = cut_at_stop(sol.answer, job.stop)
        # `length`: a budget ran out, or the client's max_tokens cut a call (the answer may be
        # cut or missing), as OpenAI reports a reply cut by max_tokens.
        limited = job.max_tokens is not None and cut
        finish = "length" if sol.status.startswith("budget_exceeded") or limited else "stop"
        sink(index, "content", unit.prefix + answer)
        return Part([ChoiceResult(index, unit.prefix + answer, finish, "".join(steps))],
                    sol.usage, [sol.trace_id])

    return run


def _chat_all(backend: Any, job: Job, cancel: threading.Event) -> Part:
    requests = [u.request for u in job.units]
    with cancel_on(cancel):  # a client gone away frees the decode at once where the engine can
        responses = [backend.chat(requests[0])] if len(requests) == 1 else backend.chat_batch(requests)
    choices, usage = [], Usage()
    for u, (unit, resp) in enumerate(zip(job.units, responses)):
        usage = usage + resp.usage
        for c in resp.choices:
            text, hit = cut_at_stop(c.text, job.stop)  # backends cut already; make sure
            choices.append(ChoiceResult(u * job.n + c.index, unit.prefix + text,
                                        "stop" if hit else c.finish_reason))
    return Part(choices, usage)


def choice_seed(seed: int | None, j: int) -> int | None:
    """The seed of a streamed request's choice `j`: `seed + j`, wrapped around within the
    signed 64-bit range that the API accepts and every backend takes (torch, upstream servers)."""
    if seed is None:
        return None
    return (seed + j + 2**63) % 2**64 - 2**63


def _stream_task(backend: Any, job: Job, u: int, j: int) -> Task:
    unit = job.units[u]
    index = u * job.n + j
    params = unit.request.params
    seed = choice_seed(params.seed, j)
    request = unit.request.model_copy(update={"params": params.model_copy(update={"n": 1, "seed": seed})})

    def run(sink: Sink, cancel: threading.Event) -> Part:
        if unit.prefix:
            sink(index, "content", unit.prefix)
        text, hit, summary = _consume(backend.stream(request), job.stop, index, sink, cancel)
        finish, usage = _stream_summary(backend, request, text, hit, summary)
        if j > 0:  # the prompt is counted once per prompt, as for a non-streamed request
            usage = Usage(prompt_tokens=0, completion_tokens=usage.completion_tokens)
        return Part([ChoiceResult(index, unit.prefix + text, finish)], usage)

    return run


def _consume(pieces: Iterator[str], stop: list[str], index: int, sink: Sink,
             cancel: threading.Event) -> tuple[str, bool, Any]:
    filt, out, hit, summary = StopFilter(stop), [], False, None
    try:
        while not cancel.is_set():
            try:
                piece = next(pieces)
            except StopIteration as end:
                summary = end.value  # a backend may return its ChatResponse at the end
                break
            text, hit = filt.feed(piece)
            if text:
                out.append(text)
                sink(index, "content", text)
            if hit:
                break
        tail = "" if hit or cancel.is_set() else filt.flush()
        if tail:
            out.append(tail)
            sink(index, "content", tail)
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # stops the backend's generation early when we stopped reading
    return "".join(out), hit, summary


def _stream_summary(backend: Any, request: ChatRequest, text: str, hit: bool,
                    summary: Any) -> tuple[str, Usage]:
    if isinstance(summary, ChatResponse):
        return ("stop" if hit else summary.choices[0].finish_reason), summary.usage
    # The backend did not report: measure the text, and estimate the prompt from its messages.
    completion = backend.count_tokens(text) if text else 0
    finish = "stop" if hit or completion < request.params.max_tokens else "length"
    prompt = sum(backend.count_tokens(m.content) + 1 for m in request.messages)
    return finish, Usage(prompt_tokens=prompt, completion_tokens=completion)
