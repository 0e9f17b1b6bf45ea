"""The transformers chat backend: local models on CPU or GPU, truly batched.

Requests are rendered with the tokenizer's chat template, left-padded, and generated together:
`chat_batch` and `n > 1` run one `generate` per chunk of at most `max_batch_size` sequences, and
concurrent `chat()` calls from many threads are gathered by a `MicroBatcher` into such batches.
Greedy requests batch with each other whatever their token limits and stop strings (those are
per row); sampled requests batch with requests of the same temperature and top_p; a seeded
sampled request runs on its own so its seed alone decides its output; each JSON schema gets its
own batches. Only one `generate` runs at a time.

Token usage is measured, not estimated: prompt tokens of the rendered prompt without padding,
completion tokens up to and including the end-of-sequence token or the token that completed a
stop string. Stop strings are cut from the text and never returned.

This module knows nothing about workflows, traces or servers; model files come from
`agentrt.llm.models`, constrained decoding from `agentrt.llm.grammar`.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.errors import BackendRequestError, BackendUnavailableError, ConfigError
from agentrt.llm.batcher import BatchStats, MicroBatcher
from agentrt.llm.decode import decode_rows
from agentrt.llm.grammar import GrammarCache, schema_key
from agentrt.llm.models import CHATML_TEMPLATE, model_not_found, resolve_model
from agentrt.threads import apply as apply_threads
from agentrt.types import ChatRequest, ChatResponse, Choice, Usage

__all__ = ["HFBackend", "GenerateStats"]


@dataclass
class _Job:
    request: ChatRequest
    prompt_ids: list[int]
    start: float = field(default_factory=time.perf_counter)

    @property
    def greedy(self) -> bool:
        return self.request.params.temperature == 0.0

    @property
    def rows(self) -> int:
        return 1 if self.greedy else self.request.params.n


@dataclass
class _Row:
    job: int
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str]


@dataclass
class GenerateStats:
    """How many `generate` calls ran and the most sequences one of them held."""

    calls: int = 0
    rows: int = 0
    max_rows: int = 0


class _RowStops:
    """Stopping criterion: per row, its own token limit, its stop strings, or a cancel flag."""

    def __init__(self, rows: list[_Row], prompt_len: int, decode: Any, eos: set[int], cancel: Any):
        self.rows, self.prompt_len, self.decode, self.eos = rows, prompt_len, decode, eos
        self.cancel = cancel
        self.done = [False] * len(rows)
        self.stop_at: list[int | None] = [None] * len(rows)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        gen_len = input_ids.shape[1] - self.prompt_len
        last = input_ids[:, -1].tolist()
        for i, row in enumerate(self.rows):
            if self.done[i]:
                continue
            if last[i] in self.eos or gen_len >= row.max_tokens:
                self.done[i] = True
            elif row.stop and any(s in self.decode(input_ids[i, self.prompt_len :]) for s in row.stop):
                self.done[i], self.stop_at[i] = True, gen_len
            elif self.cancel is not None and self.cancel.is_set():
                self.done[i] = True
        return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)


def _pick_device(device: str) -> str:
    import torch

    if device not in ("auto", "cpu", "cuda") and not device.startswith("cuda:"):
        raise ConfigError(f"device must be 'auto', 'cpu' or 'cuda[:N]', not {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"device {device!r} asked for, but torch sees no CUDA GPU")
    return device


def _load(source: str, device: str, home: Any) -> tuple[Any, Any]:
    """Load (model, tokenizer) from a directory, a hub id, or a PEFT adapter directory."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    adapter = Path(source) / "adapter_config.json"
    tok_source = source
    try:
        if adapter.is_file():
            base = json.loads(adapter.read_text()).get("base_model_name_or_path") or ""
            base_path = resolve_model(base, home)
            model = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
            try:
                from peft import PeftModel
            except ImportError:
                raise BackendUnavailableError("loading a LoRA adapter needs peft: pip install peft") from None
            model = PeftModel.from_pretrained(model, source).merge_and_unload()
            if not (Path(source) / "tokenizer_config.json").is_file():
                tok_source = base_path
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(tok_source)
    except (OSError, ValueError) as e:
        raise model_not_found(source, str(e).splitlines()[0][:300]) from None
    model.to(device).eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = CHATML_TEMPLATE
    return model, tokenizer


class HFBackend:
    """Chat backend on transformers. See the module docstring for batching rules.

    Args:
        model: an embedded model name, a local directory, a LoRA adapter directory or a hub id.
        device: "auto" (CUDA if present), "cpu" or "cuda[:N]".
        home: agentrt home for the embedded model cache.
        max_batch_size: most sequences in one `generate` call.
        batch_wait_s: how long concurrent `chat()` calls are gathered before a batch starts.

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
    ):
        if max_batch_size < 1:
            raise ConfigError("max_batch_size must be >= 1")
        self.model_id = model
        self.device = _pick_device(device)
        self.max_batch_size = max_batch_size
        self.model, self.tokenizer = _load(resolve_model(model, home), self.device, home)
        gen_cfg = self.model.generation_config
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else []
        self._eos = {int(x) for x in (eos if isinstance(eos, list) else [eos])}
        self._eos.add(int(self.tokenizer.eos_token_id))
        self._pad = int(self.tokenizer.pad_token_id)
        self._max_len = getattr(self.model.config, "max_position_embeddings", None)
        self._grammars: GrammarCache | None = None
        self._gen_lock = threading.RLock()  # one generate at a time; re-entered by _seeded
        self._tok_lock = threading.Lock()
        self.generate_stats = GenerateStats()
        self._batcher: MicroBatcher[_Job, ChatResponse] = MicroBatcher(
            self._run_jobs, max_batch_size, batch_wait_s, weight=lambda j: j.rows, name="hf-batcher"
        )

    @classmethod
    def from_options(
        cls,
        model: str = "smollm2-135m",
        device: str = "auto",
        home: str | Path | None = None,
        max_batch_size: int = 8,
        batch_wait_s: float = 0.005,
        **ignored: Any,
    ) -> "HFBackend":
        """Build from registry options; unknown options are ignored."""
        return cls(model, device=device, home=home, max_batch_size=max_batch_size, batch_wait_s=batch_wait_s)

    @property
    def batch_stats(self) -> BatchStats:
        """Counters of the micro-batches formed from concurrent `chat()` calls."""
        return self._batcher.stats

    # ---- public API -------------------------------------------------------------------------

    def chat(self, request: ChatRequest) -> ChatResponse:
        """Run one request; concurrent calls from other threads are batched with it."""
        return self._batcher.submit(self._prepare(request))

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """Run many requests in as few `generate` calls as their settings allow."""
        return self._run_jobs([self._prepare(r) for r in requests]) if requests else []

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """Yield text pieces as they are generated (n must be 1); stop strings never appear.

        Read to the end, the iterator returns the `ChatResponse` (finish reason, measured usage)
        as its `StopIteration.value` (see `ChatBackend.stream`).

        Generation runs in a thread feeding a `TextIteratorStreamer`; text that could be the start
        of a stop string is held back until it is known not to be one. Closing the iterator early
        stops the generation at its next token.
        """
        if request.params.n != 1:
            raise BackendRequestError("stream needs n == 1", status=400)
        return self._stream(self._prepare(request))

    def _stream(self, job: _Job) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancel, errors, outs = threading.Event(), [], []
        p = job.request.params
        row = _Row(0, job.prompt_ids, p.max_tokens, p.stop)

        def work() -> None:
            try:
                with self._seeded(p.seed if not job.greedy else None):
                    outs.extend(self._generate([row], job.request, streamer=streamer, cancel=cancel))
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                errors.append(e)
                streamer.end()

        thread = threading.Thread(target=work, name="hf-stream", daemon=True)
        thread.start()
        hold = max((len(s) for s in p.stop), default=1) - 1
        buf = ""
        try:
            for piece in streamer:
                buf += piece
                cut = min((i for i in (buf.find(s) for s in p.stop) if i >= 0), default=-1)
                if cut >= 0:
                    buf = buf[:cut]
                    break
                if len(buf) > hold:
                    yield buf[: len(buf) - hold]
                    buf = buf[len(buf) - hold :]
            if errors:
                raise errors[0]
            if buf:
                yield buf
        finally:
            cancel.set()
            thread.join()
        # Read to the end: hand back the finish reason and measured usage, as `chat` would.
        return self._response(job, outs) if outs else None

    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text` (no special tokens added)."""
        with self._tok_lock:
            return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def close(self) -> None:
        """Stop the batcher and free the model."""
        self._batcher.close()
        self.model = None
        if self.device.startswith("cuda"):
            import torch

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
                f"prompt ({len(ids)} tokens) plus max_tokens ({request.params.max_tokens}) exceeds "
                f"the model's context of {self._max_len} tokens",
                status=400,
            )
        if request.json_schema is not None:
            self._grammar_cache().compile(request.json_schema)  # fail early on a bad schema
        return _Job(request, ids)

    def _grammar_cache(self) -> GrammarCache:
        if self._grammars is None:
            self._grammars = GrammarCache(self.tokenizer, self.model.config.vocab_size)
        return self._grammars

    @staticmethod
    def _group_key(index: int, job: _Job) -> tuple:
        p = job.request.params
        schema = schema_key(job.request.json_schema) if job.request.json_schema is not None else None
        if job.greedy:
            return (schema, "greedy")
        if p.seed is not None:
            return (schema, "seeded", index)  # alone: its seed must decide its output
        return (schema, "sample", p.temperature, p.top_p)

    def _run_jobs(self, jobs: list[_Job]) -> list[ChatResponse]:
        groups: dict[tuple, list[_Row]] = {}
        for j, job in enumerate(jobs):
            p = job.request.params
            rows = [_Row(j, job.prompt_ids, p.max_tokens, p.stop) for _ in range(job.rows)]
            groups.setdefault(self._group_key(j, job), []).extend(rows)
        outputs: dict[int, list[tuple[str, str, int]]] = {j: [] for j in range(len(jobs))}
        for rows in groups.values():
            job = jobs[rows[0].job]
            rows.sort(key=lambda r: len(r.prompt_ids))
            seed = job.request.params.seed if not job.greedy else None
            with self._seeded(seed):
                for k in range(0, len(rows), self.max_batch_size):
                    chunk = rows[k : k + self.max_batch_size]
                    for row, out in zip(chunk, self._generate(chunk, job.request)):
                        outputs[row.job].append(out)
        return [self._response(job, outputs[j]) for j, job in enumerate(jobs)]

    @contextlib.contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        if seed is None:
            yield
            return
        import torch

        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with self._gen_lock, torch.random.fork_rng(devices=devices):
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

    def _generate(
        self, rows: list[_Row], request: ChatRequest, streamer: Any = None, cancel: Any = None
    ) -> list[tuple[str, str, int]]:
        """One `generate` over `rows` (sharing `request`'s sampling settings and schema)."""
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        p = request.params
        decode = lambda t: self.tokenizer.decode(t, skip_special_tokens=True)  # noqa: E731
        procs = LogitsProcessorList()
        if request.json_schema is not None:
            procs.append(self._grammar_cache().processor(request.json_schema, len(rows)))
        with self._gen_lock, torch.inference_mode():
            apply_threads()  # the thread count wanted now, in this (batcher) thread
            if streamer is None:
                gen, stop_at = decode_rows(self.model, rows, ids.to(self.device),
                                            mask.to(self.device), procs, p, self._eos, decode,
                                            cancel)
            else:  # streaming (one row): transformers' generate drives the streamer
                sampled = p.temperature > 0
                config = GenerationConfig(
                    max_new_tokens=max(r.max_tokens for r in rows), do_sample=sampled,
                    eos_token_id=sorted(self._eos), pad_token_id=self._pad,
                    **({"temperature": p.temperature, "top_p": p.top_p, "top_k": 0}
                       if sampled else {}),
                )
                stops = _RowStops(rows, width, decode, self._eos, cancel)
                out = self.model.generate(
                    input_ids=ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    generation_config=config,
                    stopping_criteria=StoppingCriteriaList([stops]),
                    logits_processor=procs,
                    streamer=streamer,
                )
                gen, stop_at = out[:, width:].tolist(), stops.stop_at
            self.generate_stats.calls += 1
            self.generate_stats.rows += len(rows)
            self.generate_stats.max_rows = max(self.generate_stats.max_rows, len(rows))
        return [self._finish(r, gen[i], stop_at[i], decode) for i, r in enumerate(rows)]

    def _finish(self, row: _Row, tokens: list[int], stop_at: int | None, decode: Any) -> tuple[str, str, int]:
        """(text, finish_reason, completion tokens) of one generated row."""
        tokens = tokens[: row.max_tokens]
        end = next((k for k, t in enumerate(tokens) if t in self._eos), None)
        count, reason = (end + 1, "stop") if end is not None else (len(tokens), "length")
        if stop_at is not None and stop_at <= count:
            count, reason = stop_at, "stop"
        text = decode(tokens[: min(count, end if end is not None else count)])
        cut = min((i for i in (text.find(s) for s in row.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, reason = text[:cut], "stop"
        return text, reason, count
