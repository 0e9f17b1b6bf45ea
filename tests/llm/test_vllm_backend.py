"""The vLLM backend without vLLM: the install hint and the request/response translations.

vLLM needs a CUDA GPU; the engine itself is replaced by a scripted stand-in at the module seam.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field

import pytest

from agentrt.core.errors import BackendUnavailableError
from agentrt.llm.base import load_backend
from agentrt.llm.vllm_backend import VLLMBackend, build_sampling_params, response_from_output, sampling_kwargs
from agentrt.core.types import ChatRequest, Message, SamplingParams

SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


@dataclass
class FakeParams:
    kwargs: dict


@dataclass
class FakeStructured:
    json: dict


def fake_sampling_module(new_api: bool = True) -> types.SimpleNamespace:
    ns = types.SimpleNamespace(SamplingParams=lambda **kw: FakeParams(kw))
    if new_api:
        ns.StructuredOutputsParams = FakeStructured
    else:
        ns.GuidedDecodingParams = FakeStructured
    return ns


def out(prompt_len: int, *completions: tuple[str, int, str]) -> types.SimpleNamespace:
    outs = [
        types.SimpleNamespace(index=i, text=t, token_ids=list(range(k)), finish_reason=f)
        for i, (t, k, f) in enumerate(completions)
    ]
    return types.SimpleNamespace(prompt_token_ids=list(range(prompt_len)), outputs=list(reversed(outs)))


def test_missing_vllm_names_the_install_step(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(BackendUnavailableError, match=r"pip install 'agentrt\[vllm\]'"):
        load_backend("vllm", "smollm2-135m")


def test_sampling_kwargs_translate_every_parameter():
    req = ChatRequest(
        messages=[Message(role="user", content="hi")],
        params=SamplingParams(temperature=0.7, top_p=0.8, max_tokens=50, stop=["END"], n=3, seed=11),
    )
    assert sampling_kwargs(req) == {
        "n": 3,
        "temperature": 0.7,
        "top_p": 0.8,
        "max_tokens": 50,
        "stop": ["END"],
        "include_stop_str_in_output": False,
        "seed": 11,
    }
    assert "seed" not in sampling_kwargs(ChatRequest.of("hi"))


@pytest.mark.parametrize("new_api,key", [(True, "structured_outputs"), (False, "guided_decoding")])
def test_json_schema_becomes_structured_output_params(new_api, key):
    req = ChatRequest(messages=[Message(role="user", content="hi")], json_schema=SCHEMA)
    params = build_sampling_params(req, fake_sampling_module(new_api))
    assert params.kwargs[key] == FakeStructured(json=SCHEMA)
    plain = build_sampling_params(ChatRequest.of("hi"), fake_sampling_module(new_api))
    assert key not in plain.kwargs


def test_response_from_output_counts_tokens_and_orders_choices():
    resp = response_from_output(out(12, ("a", 3, "stop"), ("bb", 5, "length")), "m", latency_s=0.5)
    assert [c.text for c in resp.choices] == ["a", "bb"]
    assert [c.finish_reason for c in resp.choices] == ["stop", "length"]
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (12, 8)
    assert resp.model == "m" and resp.latency_s == 0.5


@dataclass
class FakeEngine:
    calls: list = field(default_factory=list)

    def chat(self, conversations, sampling_params, use_tqdm, lora_request):
        self.calls.append((conversations, sampling_params))
        return [out(len(c[-1]["content"]), ("reply " + c[-1]["content"], 2, "stop")) for c in conversations]

    def get_tokenizer(self):
        return types.SimpleNamespace(encode=lambda text, add_special_tokens: text.split())


def test_backend_batches_requests_into_one_engine_call(monkeypatch):
    fake_vllm = types.ModuleType("vllm")
    fake_vllm.sampling_params = fake_sampling_module()
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm)
    engine = FakeEngine()
    backend = VLLMBackend(engine, "m")
    results = backend.chat_batch([ChatRequest.of("one"), ChatRequest.of("three", system="s")])
    assert [r.text for r in results] == ["reply one", "reply three"]
    assert len(engine.calls) == 1
    conversations, params = engine.calls[0]
    assert conversations[1] == [{"role": "system", "content": "s"}, {"role": "user", "content": "three"}]
    assert [p.kwargs["max_tokens"] for p in params] == [256, 256]
    assert backend.chat(ChatRequest.of("x")).text == "reply x"
    assert list(backend.stream(ChatRequest.of("y"))) == ["reply y"]
    assert backend.count_tokens("a b c") == 3
    backend.close()
