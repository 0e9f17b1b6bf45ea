"""The continuous decode batch on a tiny random Llama: rows joining mid-flight and leaving early
get exactly what they get alone, with decode steps through transformers' forward and through the
lean step alike."""

from __future__ import annotations

import json

import pytest
import torch

from agentrt.llm.decode import DecodeBatch, decode_rows
from agentrt.llm.hf import HFBackend, _Row
from agentrt.core.types import ChatRequest, SamplingParams

GREEDY = SamplingParams(max_tokens=1)
PROMPTS = ["hi", "Write a long poem about the sea, the wind, the salt and the gulls above the waves",
           "What is 7 * 8?", "x"]


@pytest.fixture(scope="module")
def backend(tiny_llama_dir) -> HFBackend:
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32")
    assert backend.lean is not None  # a Llama on a CPU: decode steps go the lean way
    yield backend
    backend.close()


def rows_of(backend: HFBackend, prompts: list[str], max_tokens: int) -> list[_Row]:
    rows = []
    for prompt in prompts:
        job = backend._prepare(ChatRequest.of(prompt, max_tokens=max_tokens))
        rows.append(_Row(job, job.prompt_ids, max_tokens, []))
    return rows


def alone(backend: HFBackend, row: _Row) -> list[int]:
    with torch.inference_mode():
        gen, _ = decode_rows(backend.model, [row], *backend._padded([row]), [], GREEDY,
                             backend._eos, backend._decode, None, backend._pad)
    return gen[0]


STEPS = pytest.mark.parametrize("lean", [False, True], ids=["forward", "lean"])


@STEPS
def test_rows_joining_at_different_steps_decode_as_they_would_alone(backend, lean):
    rows = rows_of(backend, PROMPTS, 24)
    expected = {id(r): alone(backend, r) for r in rows}  # alone: the forward's steps
    batch = DecodeBatch(backend.model, GREEDY, backend._eos, backend._decode, [], backend._pad,
                        lean=backend.lean if lean else None)
    got = {}
    plan = {0: [rows[0]], 3: [rows[1]], 5: [rows[2], rows[3]]}  # step -> rows that join then
    with torch.inference_mode():
        for step in range(100):
            if step in plan:
                assert batch.joinable
                batch.add(plan[step], *backend._padded(plan[step]))
            if not len(batch):
                break
            for row, tokens, stop_at in batch.step():
                got[id(row)] = tokens
    assert got == expected
    assert all(len(tokens) == 24 for tokens in got.values())  # none ended early by chance


@STEPS
def test_cache_columns_nobody_attends_to_are_cut(backend, lean):
    long_prompt, short_prompt = rows_of(backend, [PROMPTS[1] * 3, "x"], 30)
    long_prompt.max_tokens = 2  # leaves after two steps, with the widest prompt
    expected = alone(backend, short_prompt)
    batch = DecodeBatch(backend.model, GREEDY, backend._eos, backend._decode, [], backend._pad,
                        lean=backend.lean if lean else None)
    with torch.inference_mode():
        batch.add([long_prompt, short_prompt], *backend._padded([long_prompt, short_prompt]))
        width = batch.mask.shape[1]
        batch.step()
        assert len(batch.step()) == 1
        assert batch.mask.shape[1] < width - 40  # the long prompt's columns are gone
        assert batch.mask.shape == batch.seq.shape
        while len(batch):
            for row, tokens, _ in batch.step():
                assert row is short_prompt and tokens == expected


@STEPS
def test_constrained_rows_join_a_running_constrained_decode(backend, lean):
    schema = {"type": "object", "properties": {"pick": {"enum": ["red", "green", "blue"]}},
              "required": ["pick"], "additionalProperties": False}
    proc = backend._grammar_cache().processor(schema)
    rows = rows_of(backend, PROMPTS[:3], 40)
    batch = DecodeBatch(backend.model, GREEDY, backend._eos, backend._decode, [proc], backend._pad,
                        lean=backend.lean if lean else None)
    texts = []
    with torch.inference_mode():
        batch.add(rows[:1], *backend._padded(rows[:1]))
        batch.step()
        batch.step()
        batch.add(rows[1:], *backend._padded(rows[1:]))
        while len(batch):
            texts += [backend._finish(row, tokens, at)[0] for row, tokens, at in batch.step()]
    assert len(texts) == 3 and all(json.loads(t)["pick"] in {"red", "green", "blue"} for t in texts)


@STEPS
def test_greedy_rows_equal_transformers_generate(backend, lean):
    # Our loop (rows leaving, roomy cache layers that append in place) against `generate`
    # (a plain concatenating cache), on a left-padded batch with no eos so all rows run out.
    rows = rows_of(backend, PROMPTS, 20)
    ids, mask = backend._padded(rows)
    with torch.inference_mode():
        ours, _ = decode_rows(backend.model, rows, ids, mask, [], GREEDY, set(), backend._decode,
                              None, backend._pad, lean=backend.lean if lean else None)
        theirs = backend.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=20,
                                        min_new_tokens=20, do_sample=False,
                                        pad_token_id=backend._pad)
    assert ours == theirs[:, ids.shape[1]:].tolist()
