"""The hf backend's weight precision: bf16 and weight-only int8 and int4 on CPU keep fp32's greedy
choices wherever fp32 is sure of them, and serve the same requests (batched, constrained) as fp32
does."""

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
INT8_MARGIN = 4.0


@pytest.fixture(scope="module")
def int8(smollm2_dir):
    backend = HFBackend(str(smollm2_dir), device="cpu", dtype="int8")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def int4(smollm2_dir):
    backend = HFBackend(str(smollm2_dir), device="cpu", dtype="int4")
    yield backend
    backend.close()


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


@pytest.mark.parametrize("native, precision, loads", [(True, "int4", torch.bfloat16),
                                                     (False, "fp32", torch.float32)])
def test_auto_is_int4_on_a_cpu_that_multiplies_bf16_natively(monkeypatch, native, precision,
                                                             loads):
    from agentrt.llm import hf_load

    monkeypatch.setattr(hf_load, "native_bf16", lambda: native)
    assert hf_load.pick_precision("auto", "cpu") == precision
    assert hf_load.pick_dtype("auto", "cpu") == loads
    assert hf_load.pick_precision("auto", "cuda") == "bf16"
    assert hf_load.pick_precision("fp32", "cpu") == "fp32"  # asked for: kept


def test_fp16_is_refused_on_cpu(smollm2_dir):
    with pytest.raises(ConfigError, match="GPUs"):
        HFBackend(str(smollm2_dir), device="cpu", dtype="fp16")


def prompt_ids(backend, prompt: str) -> torch.Tensor:
    """A one-message chat prompt's token ids, as the backend's chat template writes them."""
    ids = backend.tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                                add_generation_prompt=True, return_tensors="pt")
    return ids["input_ids"] if not torch.is_tensor(ids) else ids


def confident_steps(fp32, other, margin: float) -> int:
    """fp32 decodes each prompt greedily; `other` reads the same tokens (teacher forcing) and
    must pick fp32's token wherever fp32's top-2 margin is at least `margin`. Returns how many
    steps were that confident."""
    checked = 0
    for prompt in PROMPTS:
        ids = prompt_ids(fp32, prompt)
        with torch.no_grad():
            out = fp32.model.generate(ids, max_new_tokens=48, do_sample=False,
                                      output_scores=True, return_dict_in_generate=True)
            ref = torch.stack(out.scores, 1)[0].float()  # (new tokens, vocab)
            logits = other.model(out.sequences).logits[0, ids.shape[1] - 1:-1].float()
        top2 = ref.topk(2, dim=-1).values
        sure = (top2[:, 0] - top2[:, 1]) >= margin
        assert torch.equal(logits.argmax(-1)[sure], ref.argmax(-1)[sure]), prompt
        checked += int(sure.sum())
    return checked


def first_margin(backend, prompt: str) -> float:
    """The gap between the top two logits of a prompt's first reply token, alone."""
    with torch.no_grad():
        top2 = backend.model(prompt_ids(backend, prompt)).logits[0, -1].float().topk(2).values
    return float(top2[0] - top2[1])


def test_bf16_keeps_fp32s_confident_greedy_choices(pair):
    fp32, bf16 = pair
    assert confident_steps(fp32, bf16, MARGIN) >= 40  # most greedy steps here are confident


@pytest.mark.parametrize("which", ["bf16", "int8", "int4"])
def test_lower_precision_serves_batched_and_schema_constrained_requests(which, request):
    backend = request.getfixturevalue("pair")[1] if which == "bf16" else \
        request.getfixturevalue(which)
    alone = [backend.chat(ChatRequest.of(p, max_tokens=24, temperature=0.0)).text
             for p in PROMPTS]
    batched = [r.text for r in backend.chat_batch([ChatRequest.of(p, max_tokens=24,
                                                                  temperature=0.0)
                                                   for p in PROMPTS])]
    # bf16 activations (bf16 weights, or int8 weights' decode kernel): a batch of other rows,
    # another blocking or thread split rounds differently and may flip a near tie late, or
    # first: "Write the numbers from one to five." starts with '1', 'One' or 'Numbers' within
    # 0.07 of each other in fp32 (tied in int4 where bf16 is emulated, and batching broke the tie)
    clear = [i for i, p in enumerate(PROMPTS) if first_margin(backend, p) >= 0.5]
    assert len(clear) >= 3
    assert [batched[i].split()[:4] for i in clear] == [alone[i].split()[:4] for i in clear]
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"], "additionalProperties": False}
    req = ChatRequest.of("What is 12 plus 30? Answer in JSON.", max_tokens=32, temperature=0.0)
    req = req.model_copy(update={"json_schema": schema})
    assert isinstance(json.loads(backend.chat(req).text)["answer"], int)


def test_int8_keeps_linear_weights_in_int8_and_the_rest_in_fp32(int8):
    buffers = dict(int8.model.named_buffers())
    weights = [b for name, b in buffers.items() if name.endswith("weight_int8")]
    assert len(weights) == 30 * 7 + 1  # q, k, v, o, gate, up, down per layer; the output layer
    assert all(w.dtype == torch.int8 for w in weights)
    assert not any(isinstance(m, torch.nn.Linear) for m in int8.model.modules())
    assert {p.dtype for p in int8.model.parameters()} == {torch.float32}  # norms, embedding, copies
    copies = [n for n, _ in int8.model.named_parameters() if n.endswith(".copy")]
    assert len(copies) == 30 * 7  # prefill copies; the output layer keeps none


@pytest.mark.parametrize("dtype", ["int8", "int4"])
def test_weight_only_integers_are_refused_off_the_cpu(dtype):
    from agentrt.llm.hf_load import pick_dtype

    with pytest.raises(ConfigError, match="CPUs"):
        pick_dtype(dtype, "cuda")


def test_int8_keeps_fp32s_most_confident_greedy_choices(pair, int8):
    """As for bf16, with a wider margin: int8 weights move logits further than bf16 does."""
    assert confident_steps(pair[0], int8, INT8_MARGIN) >= 30


def test_int4_keeps_fp32s_most_confident_greedy_choices(pair, int4):
    """The embedded base's weights came from a 4-bit file: int4 moves its logits about as much
    as int8 does."""
    assert confident_steps(pair[0], int4, INT8_MARGIN) >= 30



def test_int8_prefills_and_wide_steps_multiply_by_a_copy_of_the_rounded_weights():
    """The copy holds exactly the dequantized int8 weights: a prefill gives the numbers that
    dequantizing each time gave; a step of a few rows takes the int8 kernel (bf16 activations),
    one of more than INT8_ROWS rows the copy."""
    from agentrt.llm.quant import INT8_ROWS, _int8_layer

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 32, bias=False)
    kept, plain = _int8_layer(linear, copy=True), _int8_layer(linear)
    assert plain.copy is None and kept.copy.dtype == torch.float32
    rounded = kept.weight_int8.float() * kept.scales.float()[:, None]
    assert torch.equal(kept.copy, rounded)
    x = torch.randn(2, 5, 64)
    assert torch.equal(kept(x), plain(x))
    assert torch.allclose(kept(x), x @ rounded.t(), atol=1e-5)
    few = torch.randn(INT8_ROWS, 1, 64)
    assert torch.equal(kept(few), plain(few))
    assert not torch.equal(kept(few), few @ rounded.t())  # the kernel's bf16 activations
    many = torch.randn(INT8_ROWS + 1, 1, 64)
    assert torch.allclose(kept(many), many @ rounded.t(), atol=1e-5)
    assert not torch.equal(kept(many), plain(many))
