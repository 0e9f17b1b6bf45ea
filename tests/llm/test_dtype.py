"""The hf backend's weight precision: bf16 on CPU keeps fp32's greedy choices wherever fp32 is
sure of them, and serves the same requests (batched, constrained) as fp32 does."""

from __future__ import annotations

import json

import pytest
import torch

from agentrt.core.errors import ConfigError
from agentrt.core.types import ChatRequest
from agentrt.llm.hf import HFBackend

PROMPTS = ["What is 12 plus 30?", "Name the capital of France.",
           "Write the numbers from one to five.", "What colour is the sky on a clear day?"]
MARGIN = 2.0  # logits: a gap this large between fp32's top two is not a rounding question


@pytest.fixture(scope="module")
def pair(smollm2_dir):
    fp32 = HFBackend(str(smollm2_dir), device="cpu", dtype="fp32")
    bf16 = HFBackend(str(smollm2_dir), device="cpu", dtype="bf16")
    yield fp32, bf16
    fp32.close()
    bf16.close()


def test_weights_load_in_the_asked_precision(pair):
    fp32, bf16 = pair
    assert next(fp32.model.parameters()).dtype == torch.float32
    assert next(bf16.model.parameters()).dtype == torch.bfloat16


@pytest.mark.parametrize("dtype", ["fp8", "float64", ""])
def test_unknown_dtypes_are_config_errors(smollm2_dir, dtype):
    with pytest.raises(ConfigError, match="dtype"):
        HFBackend(str(smollm2_dir), device="cpu", dtype=dtype)


def test_fp16_is_refused_on_cpu(smollm2_dir):
    with pytest.raises(ConfigError, match="GPUs"):
        HFBackend(str(smollm2_dir), device="cpu", dtype="fp16")


def test_bf16_keeps_fp32s_confident_greedy_choices(pair):
    """fp32 decodes greedily; bf16 reads the same tokens (teacher forcing) and must pick fp32's
    token at every position where fp32's top-2 margin is at least MARGIN."""
    fp32, bf16 = pair
    checked = 0
    for prompt in PROMPTS:
        ids = fp32.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                 add_generation_prompt=True, return_tensors="pt")
        ids = ids["input_ids"] if not torch.is_tensor(ids) else ids
        with torch.no_grad():
            out = fp32.model.generate(ids, max_new_tokens=48, do_sample=False,
                                      output_scores=True, return_dict_in_generate=True)
            seq = out.sequences
            ref = torch.stack(out.scores, 1)[0].float()  # (new tokens, vocab)
            logits = bf16.model(seq).logits[0, ids.shape[1] - 1:-1].float()
        top2 = ref.topk(2, dim=-1).values
        sure = (top2[:, 0] - top2[:, 1]) >= MARGIN
        assert torch.equal(logits.argmax(-1)[sure], ref.argmax(-1)[sure]), prompt
        checked += int(sure.sum())
    assert checked >= 40  # most greedy steps of these prompts are confident


def test_bf16_serves_batched_and_schema_constrained_requests(pair):
    _, bf16 = pair
    alone = [bf16.chat(ChatRequest.of(p, max_tokens=24, temperature=0.0)).text for p in PROMPTS]
    batched = bf16.chat_batch([ChatRequest.of(p, max_tokens=24, temperature=0.0) for p in PROMPTS])
    assert [r.text for r in batched] == alone
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}
    req = ChatRequest.of("What is 12 plus 30? Answer in JSON.", max_tokens=32, temperature=0.0)
    req = req.model_copy(update={"json_schema": schema})
    assert isinstance(json.loads(bf16.chat(req).text)["answer"], int)
