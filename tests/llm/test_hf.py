"""The transformers backend on a tiny random Llama (mechanics) and the embedded model (sense).

The tiny model runs in fp32: batched and alone give the same greedy tokens there, while bf16
(the default on CPUs with native bf16) rounds a random model's near-ties differently."""

from __future__ import annotations

import json
import threading

import pytest

from agentrt.core.errors import BackendRequestError, CancelledError, ConfigError, ModelNotFoundError
from agentrt.llm.base import ChatBackend, cancel_on, load_backend
from agentrt.llm.hf import HFBackend
from agentrt.core.types import ChatRequest, Message, SamplingParams

PROMPTS = [
    "hello",
    "What is the capital of France, and why is it famous?",
    "x",
    "Tell me a long story about dragons and knights in a castle by the sea",
]

SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "pick": {"enum": ["red", "green", "blue"]}},
    "required": ["ok", "pick"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir) -> HFBackend:
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", max_batch_size=8)
    yield backend
    backend.close()


def req(prompt: str, **params) -> ChatRequest:
    return ChatRequest.of(prompt, **params)


def test_is_a_chat_backend_and_loads_by_registry(tiny_llama_dir):
    backend = load_backend("hf", str(tiny_llama_dir), device="cpu", unrelated_option=1)
    assert isinstance(backend, ChatBackend)
    assert backend.name == "hf" and backend.supports_json_schema
    assert backend.model_id == str(tiny_llama_dir)
    backend.close()


def test_batched_equals_one_at_a_time_under_greedy(tiny):
    requests = [req(p, max_tokens=12) for p in PROMPTS]
    batched = tiny.chat_batch(requests)
    single = [tiny.chat_batch([r])[0] for r in requests]
    assert [b.text for b in batched] == [s.text for s in single]
    assert [b.usage for b in batched] == [s.usage for s in single]
    assert len({b.text for b in batched}) > 1  # the prompts really lead to different outputs


def test_rows_leaving_the_batch_early_do_not_change_the_others(tiny):
    # Rows end at different steps (own token limits, a stop string); each finished row leaves
    # the decoding batch, and every row still gets what it gets alone.
    requests = [req(p, max_tokens=m) for p, m in zip(PROMPTS, (3, 17, 1, 9))]
    alone = [tiny.chat_batch([r])[0].text for r in requests]
    cut = alone[1][len(alone[1]) // 2: len(alone[1]) // 2 + 2]
    requests.append(req(PROMPTS[1], max_tokens=17, stop=[cut]))
    batched = tiny.chat_batch(requests)
    assert [b.text for b in batched[:4]] == alone
    assert batched[4].text == alone[1][: alone[1].find(cut)]
    assert batched[4].choices[0].finish_reason == "stop"
    assert [b.usage.completion_tokens for b in batched[:4]] == [3, 17, 1, 9]


def test_constrained_rows_leaving_the_batch_keep_their_grammar(tiny):
    short = {"type": "object", "properties": {"n": {"enum": [1, 2]}}, "required": ["n"]}
    request = ChatRequest(messages=[Message(role="user", content="Pick.")],
                          params=SamplingParams(max_tokens=60, temperature=1.0, n=6, seed=None),
                          json_schema=SCHEMA)
    out = tiny.chat_batch([request, request.model_copy(update={"json_schema": short})])
    for choice in out[0].choices:
        assert json.loads(choice.text)["pick"] in {"red", "green", "blue"}
    assert all(json.loads(c.text)["n"] in (1, 2) for c in out[1].choices)


def test_left_padding_and_prompt_usage(tiny):
    short, long = req("x", max_tokens=5), req(PROMPTS[3], max_tokens=5)
    assert tiny.tokenizer.padding_side == "left"
    before = tiny.generate_stats.calls
    out = tiny.chat_batch([short, long])
    assert tiny.generate_stats.calls == before + 1  # one generate for both
    for request, response in zip([short, long], out):
        rendered = tiny.tokenizer.apply_chat_template(
            [m.model_dump(exclude={"name"}) for m in request.messages], tokenize=False, add_generation_prompt=True
        )
        assert rendered.endswith("<|im_start|>assistant\n")
        assert response.usage.prompt_tokens == len(tiny.tokenizer(rendered, add_special_tokens=False).input_ids)
    assert out[0].usage.prompt_tokens < out[1].usage.prompt_tokens  # padding is not counted


def test_length_finish_and_completion_usage(tiny):
    out = tiny.chat_batch([req("hello", max_tokens=7), req(PROMPTS[1], max_tokens=3)])
    assert [r.choices[0].finish_reason for r in out] == ["length", "length"]
    assert [r.usage.completion_tokens for r in out] == [7, 3]
    assert tiny.count_tokens(out[1].text) <= 3


def test_stop_strings_are_cut_and_never_appear(tiny):
    full = tiny.chat(req(PROMPTS[1], max_tokens=30)).text
    stop = full[8:12]
    assert stop.strip() and stop in full
    out = tiny.chat_batch([req(PROMPTS[1], max_tokens=30, stop=[stop]), req(PROMPTS[1], max_tokens=30)])
    cut = out[0]
    assert stop not in cut.text
    assert cut.text == full[: full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < out[1].usage.completion_tokens
    # Tokens counted up to the one that completed the stop string.
    assert stop in tiny.tokenizer.decode(
        tiny.tokenizer(full, add_special_tokens=False).input_ids[: cut.usage.completion_tokens]
    )
    assert out[1].text == full  # a batch-mate without stops is unaffected


def test_n_choices_greedy_and_sampled(tiny):
    greedy = tiny.chat(req("hello", max_tokens=6, n=3))
    assert len(greedy.choices) == 3 and len({c.text for c in greedy.choices}) == 1
    assert [c.index for c in greedy.choices] == [0, 1, 2]
    assert greedy.usage.completion_tokens == 18
    sampled = tiny.chat(req("hello", max_tokens=6, n=4, temperature=1.0, seed=1))
    assert len(sampled.choices) == 4 and len({c.text for c in sampled.choices}) > 1
    assert sampled.usage.completion_tokens == 24


def test_seeds_reproducible_even_when_batched(tiny):
    seeded = req("hello", max_tokens=8, temperature=1.0, top_p=0.9, seed=7, n=2)
    first = tiny.chat(seeded)
    again = tiny.chat_batch([req("x", max_tokens=4, temperature=1.0), seeded, req("x", max_tokens=4)])[1]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]
    other = tiny.chat(req("hello", max_tokens=8, temperature=1.0, top_p=0.9, seed=8, n=2))
    assert [c.text for c in other.choices] != [c.text for c in first.choices]


def test_json_schema_output_parses_even_with_random_weights(tiny):
    constrained = ChatRequest(
        messages=[Message(role="user", content="Pick a colour.")],
        params=SamplingParams(max_tokens=40),
        json_schema=SCHEMA,
    )
    other_schema = {"type": "object", "properties": {"n": {"enum": [1, 2]}}, "required": ["n"]}
    mixed = [
        constrained,
        req("free text", max_tokens=5),
        constrained.model_copy(update={"json_schema": other_schema}),
        constrained.model_copy(update={"params": SamplingParams(max_tokens=40, temperature=1.0, n=3)}),
    ]
    out = tiny.chat_batch(mixed)
    for choice in [out[0].choices[0], *out[3].choices]:
        value = json.loads(choice.text)
        assert isinstance(value["ok"], bool) and value["pick"] in {"red", "green", "blue"}
        assert set(value) == {"ok", "pick"}
        assert choice.finish_reason == "stop"
    assert json.loads(out[2].text)["n"] in (1, 2)
    with pytest.raises(json.JSONDecodeError):
        json.loads(out[1].text)


def test_bad_schema_and_oversized_requests_are_rejected(tiny):
    bad = ChatRequest(messages=[Message(role="user", content="hi")], json_schema={"type": "no-such-type"})
    with pytest.raises(BackendRequestError):
        tiny.chat(bad)
    with pytest.raises(BackendRequestError, match="context"):
        tiny.chat(req("hi", max_tokens=4000))
    with pytest.raises(BackendRequestError):
        list(tiny.stream(req("hi", n=2)))


def test_stream_matches_chat_and_honours_stop(tiny):
    full = tiny.chat(req(PROMPTS[3], max_tokens=20)).text
    it, pieces = tiny.stream(req(PROMPTS[3], max_tokens=20)), []
    with pytest.raises(StopIteration) as done:
        while True:
            pieces.append(next(it))
    assert len(pieces) > 1 and "".join(pieces) == full
    response = done.value.value  # read to the end, the stream returns its ChatResponse
    assert response.text == full and response.usage.completion_tokens == 20
    stop = full[6:10]
    streamed = "".join(tiny.stream(req(PROMPTS[3], max_tokens=20, stop=[stop])))
    assert streamed == full[: full.index(stop)]
    early = tiny.stream(req(PROMPTS[3], max_tokens=200))
    next(early)
    early.close()  # generation is cancelled, the lock is free again
    assert tiny.chat(req("x", max_tokens=2)).usage.completion_tokens == 2


def test_concurrent_chat_calls_are_batched(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", max_batch_size=8,
                      batch_wait_s=0.3)
    expected = backend.chat_batch([req(p, max_tokens=6) for p in PROMPTS])
    before = backend.batch_stats.items
    results: list = [None] * 8
    barrier = threading.Barrier(8)

    def call(i: int) -> None:
        barrier.wait()
        results[i] = backend.chat(req(PROMPTS[i % 4], max_tokens=6))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = backend.batch_stats
    assert stats.items == before + 8 and stats.max_size >= 2 and stats.batches < 1 + 8
    assert [r.text for r in results] == [expected[i % 4].text for i in range(8)]
    backend.close()


def test_a_request_joins_a_running_decode_and_returns_before_it_ends(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", max_batch_size=8,
                      batch_wait_s=0)
    long_req, short_req = req(PROMPTS[3], max_tokens=40), req(PROMPTS[1], max_tokens=5)
    expected = [backend.chat(long_req).text, backend.chat(short_req).text]
    sessions, joins = backend.generate_stats.calls, backend.generate_stats.joins
    at_token, release = threading.Event(), threading.Event()
    job = backend._prepare(long_req)

    seen: list[int] = []

    def pause(token: int) -> None:  # the worker waits at the long row's third token
        seen.append(token)
        if len(seen) == 3:
            at_token.set()
            release.wait(10)

    job.on_token = pause
    long_future = backend._engine.submit(job)
    assert at_token.wait(10)
    short_future = backend._engine.submit(backend._prepare(short_req))
    release.set()
    short = short_future.result(timeout=30)
    assert not long_future.done()  # answered at its own end, not the batch's
    assert [long_future.result(timeout=30).text, short.text] == expected
    assert backend.generate_stats.calls == sessions + 1 and backend.generate_stats.joins == joins + 1
    backend.close()


def test_a_cancelled_call_ends_at_its_next_token_and_its_batch_mates_go_on(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", batch_wait_s=0.2)
    mate_req = req(PROMPTS[1], max_tokens=12)
    expected = backend.chat(mate_req).text
    event, seen = threading.Event(), []
    with cancel_on(event):
        job = backend._prepare(req(PROMPTS[3], max_tokens=200))
    assert job.cancel is event

    def count(token: int) -> None:
        seen.append(token)
        if len(seen) == 3:
            event.set()

    job.on_token = count
    doomed, mate = backend._engine.submit_many([job, backend._prepare(mate_req)])
    with pytest.raises(CancelledError):
        doomed.result(timeout=30)
    assert len(seen) == 3  # it ended at the step that saw the cancel
    assert mate.result(timeout=30).text == expected
    with cancel_on(event), pytest.raises(CancelledError):  # already cancelled: never starts
        backend.chat(req("x", max_tokens=5))
    assert backend.chat(req("x", max_tokens=2)).usage.completion_tokens == 2
    backend.close()


def test_a_cancelled_call_still_waiting_for_a_place_leaves_at_once(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", batch_wait_s=0)
    started, release = threading.Event(), threading.Event()
    seeded = backend._prepare(req(PROMPTS[3], max_tokens=30, temperature=1.0, seed=3))
    seeded.on_token = lambda token: (started.set(), release.wait(10))  # holds the worker
    running = backend._engine.submit(seeded)
    assert started.wait(10)
    event, errors = threading.Event(), []

    def call() -> None:
        with cancel_on(event):
            try:
                backend.chat(req("x", max_tokens=5))  # greedy: waits for the seeded session
            except CancelledError as e:
                errors.append(e)

    waiter = threading.Thread(target=call)
    waiter.start()
    event.set()
    waiter.join(5)
    assert not waiter.is_alive() and len(errors) == 1 and not running.done()
    release.set()
    assert running.result(timeout=30).usage.completion_tokens == 30
    backend.close()


def test_rows_beyond_the_batch_size_take_the_places_rows_leave(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", max_batch_size=2)
    requests = [req(p, max_tokens=m) for p, m in zip(PROMPTS * 2, (3, 9, 5, 2, 7, 4, 6, 8))]
    expected = [backend.chat(r).text for r in requests]
    before = backend.generate_stats.calls
    assert [r.text for r in backend.chat_batch(requests)] == expected
    assert backend.generate_stats.calls == before + 1 and backend.generate_stats.max_rows == 2
    backend.close()


def test_bad_options_are_typed_errors(tiny_llama_dir, tmp_path):
    with pytest.raises(ConfigError):
        HFBackend(str(tiny_llama_dir), device="tpu")
    with pytest.raises(ConfigError):
        HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32", max_batch_size=0)
    with pytest.raises(ModelNotFoundError, match="smollm2-135m"):
        HFBackend(str(tmp_path / "missing" / "model"), device="cpu")


def test_unreachable_hub_id_names_the_choices(monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # as on a machine without a hub
    with pytest.raises(ModelNotFoundError, match="smollm2-135m") as info:
        HFBackend("HuggingFaceTB/SmolLM2-360M-Instruct", device="cpu")
    assert "SmolLM2-360M-Instruct" in str(info.value)


def test_lora_adapter_dir_loads_over_its_base(tiny_llama_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir)
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    peft_model.save_pretrained(tmp_path / "adapter")
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(tiny_llama_dir)
    adapted = HFBackend(str(tmp_path / "adapter"), device="cpu", dtype="fp32")
    plain = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32")
    a = adapted.model.model.layers[0].self_attn.q_proj.weight
    b = plain.model.model.layers[0].self_attn.q_proj.weight
    assert a.shape == b.shape and not torch.equal(a, b)  # the adapter was merged in
    assert adapted.chat(req("hello", max_tokens=3)).usage.completion_tokens == 3
    adapted.close()
    plain.close()


@pytest.mark.slow
def test_embedded_model_answers_simple_arithmetic(embedded_home):
    backend = HFBackend("smollm2-135m", device="cpu", home=embedded_home)
    out = backend.chat(req("What is 2+3?", max_tokens=12))
    assert "5" in out.text
    assert out.usage.completion_tokens <= 12 and out.usage.prompt_tokens > 10
    backend.close()
