"""In-process vLLM backend for batch generation on a CUDA GPU.

NOT RUN on this project's development and CI machines: they have no GPU, and vLLM needs one. The
engine calls follow vLLM's documented offline API (`vllm.LLM`, `LLM.chat` over a list of
conversations with one `SamplingParams` each, `StructuredOutputsParams(json=...)` for JSON-schema
constrained decoding, falling back to `GuidedDecodingParams` on vLLM releases before structured
outputs were renamed). What is tested without vLLM: the missing-engine error and the pure
translations between our requests/responses and vLLM's objects (`sampling_kwargs`,
`build_sampling_params`, `response_from_output`).

For serving, prefer `vllm serve` plus the `openai` backend; this one is for large offline batches
(evaluation, synthesis). Concurrent `chat()` calls are gathered into one `LLM.chat` call by the
same micro-batcher the hf backend uses; vLLM schedules the batch itself. It knows nothing about
workflows or traces.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentrt.core.errors import BackendRequestError, BackendUnavailableError
from agentrt.core.types import ChatRequest, ChatResponse, Choice, Usage
from agentrt.llm.base import stream_by_chat
from agentrt.llm.batcher import MicroBatcher
from agentrt.llm.models import resolve_model

__all__ = ["VLLMBackend", "sampling_kwargs", "build_sampling_params", "response_from_output"]

INSTALL_HINT = "vllm is not installed: pip install 'agentrt[vllm]' on a machine with a CUDA GPU"


def sampling_kwargs(request: ChatRequest) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for `request` (without the JSON schema)."""
    p = request.params
    kwargs: dict[str, Any] = {
        "n": p.n,
        "temperature": p.temperature,
        "top_p": p.top_p,
        "max_tokens": p.max_tokens,
        "stop": list(p.stop),
        "include_stop_str_in_output": False,
    }
    if p.seed is not None:
        kwargs["seed"] = p.seed
    return kwargs


def build_sampling_params(request: ChatRequest, sampling_module: Any) -> Any:
    """A `SamplingParams` from `sampling_module` (normally `vllm.sampling_params`) for `request`."""
    kwargs = sampling_kwargs(request)
    schema = request.json_schema
    if schema is not None:
        if hasattr(sampling_module, "StructuredOutputsParams"):
            kwargs["structured_outputs"] = sampling_module.StructuredOutputsParams(json=schema)
        else:  # vLLM releases before the rename
            kwargs["guided_decoding"] = sampling_module.GuidedDecodingParams(json=schema)
    return sampling_module.SamplingParams(**kwargs)


def response_from_output(output: Any, model_id: str, latency_s: float = 0.0) -> ChatResponse:
    """Our response from one vLLM `RequestOutput` (prompt ids and n completion outputs)."""
    completions = sorted(output.outputs, key=lambda c: c.index)
    if not completions:
        raise BackendRequestError("vLLM returned no completions", status=500)
    choices = [
        Choice(index=i, text=c.text, finish_reason="length" if c.finish_reason == "length" else "stop")
        for i, c in enumerate(completions)
    ]
    usage = Usage(
        prompt_tokens=len(output.prompt_token_ids or []),
        completion_tokens=sum(len(c.token_ids) for c in completions),
    )
    return ChatResponse(choices=choices, usage=usage, model=model_id, latency_s=latency_s)


class VLLMBackend:
    """Chat backend on an in-process `vllm.LLM` (GPU only; see the module docstring).

    Args:
        engine: a constructed `vllm.LLM`.
        model_id: the name clients use.
        lora_path: a LoRA adapter directory applied to every request, if any.
        max_batch_size: most sequences gathered from concurrent `chat()` calls.
    """

    name = "vllm"
    supports_json_schema = True

    def __init__(self, engine: Any, model_id: str, lora_path: str | None = None, max_batch_size: int = 64):
        from vllm import sampling_params  # heavy: vllm

        self.engine = engine
        self.model_id = model_id
        self._sampling = sampling_params
        self._lora = None
        if lora_path is not None:
            from vllm.lora.request import LoRARequest  # heavy: vllm

            self._lora = LoRARequest("adapter", 1, lora_path)
        self._lock = threading.Lock()  # vllm.LLM is not safe to call from several threads
        self._batcher: MicroBatcher[ChatRequest, ChatResponse] = MicroBatcher(
            self.chat_batch, max_batch_size, 0.005, weight=lambda r: r.params.n, name="vllm-batcher"
        )

    @classmethod
    def from_options(
        cls,
        model: str,
        home: str | Path | None = None,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        seed: int = 0,
        max_batch_size: int = 64,
        **ignored: Any,
    ) -> "VLLMBackend":
        """Start a `vllm.LLM` for `model` (embedded name, directory, adapter dir or hub id).

        Raises:
            BackendUnavailableError: vllm is not installed (the message says how to install it).
        """
        try:
            import vllm  # heavy: vllm
        except ImportError:
            raise BackendUnavailableError(INSTALL_HINT) from None
        source = resolve_model(model, home)
        adapter = Path(source) / "adapter_config.json"
        lora_path = None
        if adapter.is_file():
            lora_path = source
            source = resolve_model(json.loads(adapter.read_text())["base_model_name_or_path"], home)
        engine = vllm.LLM(
            model=source,
            dtype=dtype,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            enable_lora=lora_path is not None,
        )
        return cls(engine, model, lora_path=lora_path, max_batch_size=max_batch_size)

    def chat(self, request: ChatRequest) -> ChatResponse:
        """One request; concurrent calls are gathered into one engine call."""
        return self._batcher.submit(request)

    def chat_batch(self, requests: list[ChatRequest]) -> list[ChatResponse]:
        """All requests in one `LLM.chat` call; vLLM batches and schedules them."""
        if not requests:
            return []
        conversations = [[{"role": m.role, "content": m.content} for m in r.messages] for r in requests]
        params = [build_sampling_params(r, self._sampling) for r in requests]
        start = time.perf_counter()
        with self._lock:
            outputs = self.engine.chat(
                conversations, sampling_params=params, use_tqdm=False, lora_request=self._lora
            )
        latency = time.perf_counter() - start
        return [response_from_output(o, self.model_id, latency) for o in outputs]

    def stream(self, request: ChatRequest) -> Iterator[str]:
        """The offline engine does not stream: one piece with the whole text."""
        return stream_by_chat(self, request)

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` under the engine's tokenizer."""
        return len(self.engine.get_tokenizer().encode(text, add_special_tokens=False))

    def close(self) -> None:
        """Stop the batcher and drop the engine (vLLM frees GPU memory on garbage collection)."""
        self._batcher.close()
        self.engine = None
