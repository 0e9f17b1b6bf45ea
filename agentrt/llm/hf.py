"""The transformers chat backend: local models on CPU or GPU, continuously batched.

Requests are rendered with the tokenizer's chat template and decoded by one worker thread (a
`ContinuousEngine`) in sessions of compatible rows: greedy requests share a session whatever
their token limits and stop strings (those are per row); sampled requests share one with requests
of the same temperature and top_p; a seeded sampled request has a session of its own, so its seed
alone decides its output; each JSON schema gets its own sessions. A request that arrives while a
compatible session runs joins it at the next step (its prompt is prefilled and merged into the
running KV cache), and every request gets its answer as soon as its own rows end. A prompt that
starts like a recent one (same system text, same instructions) reuses that start's KV from a
prefix cache and prefills only the rest (not a seeded one: reused values come from another
forward pass and may differ by rounding, and its seed alone must decide its output). At most
`max_batch_size` rows decode at once; further rows of a session wait for a free place. `chat()`
from many threads, `chat_batch` and `stream` all go through that one worker, so the model is
never run by two threads at once.

Token usage is measured, not estimated: prompt tokens of the rendered prompt without padding,
completion tokens up to and including the end-of-sequence token or the token that completed a
stop string. Stop strings are cut from the text and never returned.

This module knows nothing about workflows, traces or servers; model files come from
`agentrt.llm.models`, loading (device, precision, adapters) from `agentrt.llm.hf_load`, the
decode loop from `agentrt.llm.decode`, constrained decoding from `agentrt.llm.grammar`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.core import metrics
from agentrt.core.errors import (
    BackendRequestError,
    BackendUnavailableError,
    CancelledError,
    ConfigError,
)
from agentrt.core.threads import apply as apply_threads
from agentrt.core.types import ChatRequest, ChatResponse, Choice, Usage
from agentrt.llm.base import current_cancel
from agentrt.llm.batcher import BatchStats, WaitingRows
from agentrt.llm.decode import DecodeBatch, left_padded
from agentrt.llm.engine import ContinuousEngine
from agentrt.llm.grammar import GrammarCache, schema_key
from agentrt.llm.hf_load import load_model, pick_device, pick_dtype, pick_precision
from agentrt.llm.lean import LeanDecoder
from agentrt.llm.models import resolve_model
from agentrt.llm.prefix import PrefixCache
from agentrt.llm.quant import quantize

__all__ = ["HFBackend", "GenerateStats"]


@dataclass(eq=False)
class _Job:
    request: ChatRequest
    prompt_ids: list[int]
    start: float = field(default_factory=time.perf_counter)
    cancel: threading.Event | None = None  # the caller gave up (see `agentrt.llm.base.cancel_on`)
    on_token: Callable[[int], None] | None = None  # streams: each generated token
    stream: bool = False  # a cancelled stream's tokens so far stand; a cancelled call raises
    entered: int = 0  # rows that have entered a decode (the rest wait: the queue depth)

    @property
    def greedy(self) -> bool:
        return self.request.params.temperature == 0.0

    @property
    def rows(self) -> int:
        return 1 if self.greedy else self.request.params.n

    @property
    def key(self) -> tuple:
        """Jobs with equal keys decode in one session (a seeded job's key is its own)."""
        p = self.request.params
        schema = schema_key(self.request.json_schema) if self.request.json_schema is not None else None
        if self.greedy:
            return (schema, "greedy")
        if p.seed is not None:
            return (schema, "seeded", id(self))
        return (schema, "sample", p.temperature, p.top_p)


@dataclass(eq=False)
class _Row:
    job: _Job
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str]
    cancel: threading.Event | None = None
    on_token: Callable[[int], None] | None = None


@dataclass
class GenerateStats:
    """Decode sessions run, rows decoded, the most rows decoding at once, and how many groups
    of rows were prefilled into a session that was already running."""

    calls: int = 0
    rows: int = 0
    max_rows: int = 0
    joins: int = 0


def _end(streamer: Any) -> None:
    """End a text streamer; if its last decode fails, its reader is still released."""
    try:
        streamer.end()
    except Exception:  # noqa: BLE001 - the decode's own error reaches the reader via the future
        streamer.text_queue.put(streamer.stop_signal)


def _gave_up(job: _Job) -> bool:
    """A cancelled call (not a stream: a stream's cancel is its reader leaving, and the tokens
    it has so far stand)."""
    return job.cancel is not None and job.cancel.is_set() and not job.stream


class _Session:
    """One continuously batched decode of compatible jobs (see `ContinuousEngine`)."""

    def __init__(self, backend: "HFBackend", job: _Job):
        self.backend, self.key = backend, job.key
        procs = []
        if job.request.json_schema is not None:
            procs.append(backend._grammar_cache().processor(job.request.json_schema))
        seeded = self.key[1] == "seeded"  # its seed alone decides: no KV from other passes
        self.batch = DecodeBatch(backend.model, job.request.params, backend._eos, backend._decode,
                                 procs, backend._pad, None if seeded else backend.prefix_cache,
                                 backend.lean)
        self.waiting: deque[_Row] = deque()
        self.outs: dict[_Job, list[tuple[str, str, int]]] = {}
        self.stepped = False  # a job added from now on joins a running decode
        self._exit = contextlib.ExitStack()  # entered last: nothing after it can fail
        self._exit.enter_context(backend._seeded(job.request.params.seed if not job.greedy else None))
        backend.generate_stats.calls += 1

    def accepts(self, job: _Job) -> bool:
        return job.key == self.key and self.key[1] != "seeded"

    def add(self, job: _Job) -> None:
        if _gave_up(job):
            raise CancelledError("the request was cancelled before it started")
        p = job.request.params
        self.waiting.extend(_Row(job, job.prompt_ids, p.max_tokens, p.stop, job.cancel, job.on_token)
                            for _ in range(job.rows))
        self.outs[job] = []
        if self.stepped:
            metrics.DECODE_JOINS.inc()

    @property
    def load(self) -> int:
        return len(self.batch) + len(self.waiting)

    def step(self) -> list[tuple[_Job, ChatResponse | CancelledError]]:
        import torch  # heavy: torch

        backend, stats = self.backend, self.backend.generate_stats
        finished = []
        if any(_gave_up(row.job) for row in self.waiting):  # they never enter the decode
            finished = [(row, [], None) for row in self.waiting if _gave_up(row.job)]
            self.waiting = deque(row for row in self.waiting if not _gave_up(row.job))
        with torch.inference_mode():
            apply_threads()  # the thread count wanted now, in this (worker) thread
            room = backend.max_batch_size - len(self.batch)
            if self.waiting and room > 0 and self.batch.joinable:
                rows = [self.waiting.popleft() for _ in range(min(room, len(self.waiting)))]
                for row in rows:
                    row.job.entered += 1
                stats.joins += len(self.batch) > 0
                self.batch.add(rows)
                stats.rows += len(rows)
                stats.max_rows = max(stats.max_rows, len(self.batch))
            if len(self.batch):
                metrics.DECODE_BATCH_ROWS.observe(len(self.batch))
                finished += self.batch.step()
            self.stepped = True
            backend.running_rows = len(self.batch)
        done = []
        for row, tokens, stop_at in finished:
            outs = self.outs[row.job]
            outs.append(backend._finish(row, tokens, stop_at))
            if len(outs) == row.job.rows:
                job, outs = row.job, self.outs.pop(row.job)
                if _gave_up(job):
                    done.append((job, CancelledError("the request was cancelled")))
                else:
                    done.append((job, backend._response(job, outs)))
        return done

    def close(self) -> None:
        self.backend.running_rows = 0
        self._exit.close()


class HFBackend:
    """Chat backend on transformers. See the module docstring for batching rules.

    Args:
        model: an embedded model name, a local directory, a LoRA adapter directory or a hub id.
        device: "auto" (CUDA if present), "cpu" or "cuda[:N]".
        home: agentrt home for the embedded model cache.
        dtype: the weights' precision: "auto" (int4 on a CPU with native bf16, else fp32;
            bf16 on a GPU; `hf_load.pick_precision`), "fp32", "bf16",
            "fp16" (GPUs only), "int8" (CPUs only: weight-only int8 linear layers for decode
            steps of up to 24 rows, their rounded fp32 copies for prefills and wider steps,
            the rest fp32; `agentrt.llm.quant.quantize_int8`) or "int4" (CPUs
            only: 4-bit linear layers in groups of 32 where the weights lie on such a grid,
            a LoRA adapter kept beside them, the rest bf16; `quantize_int4`).
        max_batch_size: most rows decoding at once.
        batch_wait_s: how long an idle backend waits for more requests before it starts
            decoding a first one (later ones join the running decode anyway).
        prefix_cache_mb: memory for the KV of recent prompts, reused by prompts that start the
            same way (`agentrt.llm.prefix`); 0 turns prefix caching off.
        lean_decode: on a CPU, run decode steps of Llama-family models through
            `agentrt.llm.lean.LeanDecoder` (the same numbers, less overhead per step); False
            keeps transformers' forward for every step. GPUs always use the forward.

    Example:
        >>> backend = HFBackend("smollm2-135m")  # doctest: +SKIP
        >>> backend.chat(ChatRequest.of("What is 2+3?", max_tokens=16)).text  # doctest: +SKIP
        '2 + 3 = 5'
    """

    name = "hf"
    supports_json_schema = True

    def __init__(
        self,
        model: str = "smollm2-135m",
        device: str = "auto",
        home: str | Path | None = None,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        prefix_cache_mb: float = 256,
        dtype: str = "auto",
        lean_decode: bool = True,
    ):
        if max_batch_size < 1:
            raise ConfigError("max_batch_size must be >= 1")
        if prefix_cache_mb < 0:
            raise ConfigError("prefix_cache_mb must be >= 0")
        self.model_id = model
        self.device = pick_device(device)
        self.precision = pick_precision(dtype, self.device)
        self.dtype = pick_dtype(self.precision, self.device)
        self.max_batch_size = max_batch_size
        self._engine: ContinuousEngine[_Job] = ContinuousEngine(
            lambda job: _Session(self, job), max_batch_size, batch_wait_s, name="hf-decode",
            retry=lambda job: not job.stream,  # a stream's tokens went out: never run it twice
        )
        # torch's CPU thread pool is per OS thread: loading on the decode thread keeps the
        # process at one pool where it can (two ran decode steps at 0.55x on 2 cores)
        loaded = self._engine.start(lambda: self._load(model, home, lean_decode))
        try:
            loaded.result()
        except BaseException:
            self._engine.close()
            raise
        self._grammars: GrammarCache | None = None
        self._tok_lock = threading.Lock()
        self.generate_stats = GenerateStats()
        self.prefix_cache = PrefixCache(int(prefix_cache_mb * 2**20)) if prefix_cache_mb else None
        self.running_rows, self.waiting_rows = 0, WaitingRows()  # rows decoding, rows waiting
        metrics.DECODE_RUNNING.track(self, lambda backend: backend.running_rows)
        metrics.DECODE_QUEUE.track(self, lambda backend: backend.waiting_rows.count)

    def _load(self, model: str, home: str | Path | None, lean_decode: bool) -> None:
        """Model, tokenizer, lean step and special tokens (runs on the decode thread)."""
        # int4 keeps an adapter beside the 4-bit base: not merged
        self.model, self.tokenizer = load_model(resolve_model(model, home), self.device, home,
                                                self.dtype, merge_adapter=self.precision != "int4")
        quantize(self.model, self.precision)
        self.lean = LeanDecoder.build(self.model) if lean_decode and self.device == "cpu" else None
        gen_cfg = self.model.generation_config
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else []
        self._eos = {int(x) for x in (eos if isinstance(eos, list) else [eos])}
        self._eos.add(int(self.tokenizer.eos_token_id))
        self._pad = int(self.tokenizer.pad_token_id)
        self._max_len = getattr(self.model.config, "max_position_embeddings", None)

    @classmethod
    def from_options(
        cls,
        model: str = "smollm2-135m",
        device: str = "auto",
        home: str | Path | None = None,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        prefix_cache_mb: float = 256,
        dtype: str = "auto",
        lean_decode: bool = True,
        **ignored: Any,
    ) -> "HFBackend":
        """Build from registry options; unknown options are ignored."""
        return cls(model, device=device, home=home, max_batch_size=max_batch_size,
                   batch_wait_s=batch_wait_s, prefix_cache_mb=prefix_cache_mb, dtype=dtype,
                   lean_decode=lean_decode)

    @property
    def batch_stats(self) -> BatchStats:
        """Counters of the decode sessions: `batches` sessions, `items` requests served."""
        return self._engine.stats

    # ---- public API -------------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Run one request; concurrent calls from other threads decode in the same batch."""
        return self.chat_batch([request])[0]

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Run many requests together, in as few sessions as their settings allow."""
        jobs = [self._prepare(r) for r in requests]
        return [self._wait(job, future) for job, future in zip(jobs, self._submit(jobs))]

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """Yield text pieces as they are generated (n must be 1); stop strings never appear.

        Read to the end, the iterator returns the `ChatResponse` (finish reason, measured usage)
        as its `StopIteration.value` (see `ChatBackend.stream`).

        The request decodes in the shared batch like any other; its tokens feed a
        `TextIteratorStreamer`, and text that could be the start of a stop string is held back
        until it is known not to be one. Closing the iterator early ends the row at its next
        token.
        """
        if request.params.n != 1:
            raise BackendRequestError("stream needs n == 1", status=400)
        return self._stream(self._prepare(request))

    def _stream(self, job: _Job) -> Iterator[str]:
        import torch  # heavy: torch
        from transformers import TextIteratorStreamer  # heavy: transformers

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=False, skip_special_tokens=True)
        job.cancel, job.stream = threading.Event(), True
        job.on_token = lambda token: streamer.put(torch.tensor([token]))
        (future,) = self._submit([job])
        future.add_done_callback(lambda _f: _end(streamer))
        stop = job.request.params.stop
        hold = max((len(s) for s in stop), default=1) - 1
        buf = ""
        try:
            for piece in streamer:
                buf += piece
                cut = min((i for i in (buf.find(s) for s in stop) if i >= 0), default=-1)
                if cut >= 0:
                    buf = buf[:cut]
                    job.cancel.set()  # the row ends at its next token at the latest
                    break
                if len(buf) > hold:
                    yield buf[: len(buf) - hold]
                    buf = buf[len(buf) - hold :]
            response = future.result()  # raises the decode's error, if any
            if buf:
                yield buf
        finally:
            job.cancel.set()
        # Read to the end: hand back the finish reason and measured usage, as `chat` would.
        return response

    def _submit(self, jobs: list[_Job]) -> list[Future]:
        try:
            futures = self._engine.submit_many(jobs)
        except RuntimeError:  # closed meanwhile
            raise BackendUnavailableError("this hf backend is closed") from None
        self.waiting_rows.add(jobs, futures)
        return futures

    @staticmethod
    def _wait(job: _Job, future: Future) -> ChatResponse:
        """The job's response; a call cancelled while it still waits for a place leaves at once."""
        while True:
            try:
                return future.result(timeout=None if job.cancel is None else 0.05)
            except FutureTimeout:
                if job.cancel.is_set() and future.cancel():
                    raise CancelledError("the request was cancelled before it started") from None

    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text` (no special tokens added)."""
        with self._tok_lock:
            return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def close(self) -> None:
        """Finish the queued requests, stop the decode worker and free the model."""
        self._engine.close()
        self.model = self.lean = None
        if self.prefix_cache is not None:
            self.prefix_cache.clear()
        if self.device.startswith("cuda"):
            import torch  # heavy: torch

            torch.cuda.empty_cache()

    # ---- internals --------------------------------------------------------------------------

    def _prepare(self, request: ChatRequest) -> _Job:
        if self.model is None:
            raise BackendUnavailableError("this hf backend is closed")
        msgs = [{"role": m.role, "content": m.content} for m in request.messages]
        with self._tok_lock:
            text = self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            ids = self.tokenizer(text, add_special_tokens=False).input_ids
        if self._max_len and len(ids) + request.params.max_tokens > self._max_len:
            raise BackendRequestError(
                f"This model's maximum context length is {self._max_len} tokens. However, you "
                f"requested {len(ids) + request.params.max_tokens} tokens ({len(ids)} in the "
                f"messages, {request.params.max_tokens} in the completion). Please reduce the "
                "length of the messages or completion.",
                status=400,
                reason="context_length_exceeded",
                limit=self._max_len,
            )
        if request.json_schema is not None:
            self._grammar_cache().compile(request.json_schema)  # fail early on a bad schema
        return _Job(request, ids, cancel=current_cancel())

    def _grammar_cache(self) -> GrammarCache:
        if self._grammars is None:
            self._grammars = GrammarCache(self.tokenizer, self.model.config.vocab_size)
        return self._grammars

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        if seed is None:
            yield
            return
        import torch  # heavy: torch

        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            yield

    def _response(self, job: _Job, outs: list[tuple[str, str, int]]) -> ChatResponse:
        n = job.request.params.n
        if job.greedy:
            outs = outs * n  # greedy choices are identical: generated once
        choices = [Choice(index=i, text=t, finish_reason=f) for i, (t, f, _) in enumerate(outs)]
        usage = Usage(prompt_tokens=len(job.prompt_ids), completion_tokens=sum(c for _, _, c in outs))
        latency = time.perf_counter() - job.start
        return ChatResponse(choices=choices, usage=usage, model=self.model_id, latency_s=latency)

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _padded(self, rows: list[_Row]) -> tuple[Any, Any]:
        """Left-padded prompt ids and attention mask of `rows`, on the model's device."""
        return left_padded([r.prompt_ids for r in rows], self._pad, self.device)

    def _finish(self, row: _Row, tokens: list[int], stop_at: int | None) -> tuple[str, str, int]:
        """(text, finish_reason, completion tokens) of one generated row."""
        tokens = tokens[: row.max_tokens]
        end = next((k for k, t in enumerate(tokens) if t in self._eos), None)
        count, reason = (end + 1, "stop") if end is not None else (len(tokens), "length")
        if stop_at is not None and stop_at <= count:
            count, reason = stop_at, "stop"
        text = self._decode(tokens[: min(count, end if end is not None else count)])
        cut = min((i for i in (text.find(s) for s in row.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, reason = text[:cut], "stop"
        return text, reason, count
