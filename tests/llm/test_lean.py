"""The lean decode step computes what transformers' forward computes: the same logits for one
row, the same up to float rounding for a padded batch, the same greedy replies through the
backend in fp32, int8 and int4 (int8's wide steps on its rounded copies), close logits with a
LoRA adapter kept beside 4-bit weights; models it does not cover keep the forward."""

from __future__ import annotations

import pytest
import torch

from agentrt.core.types import ChatRequest
from agentrt.llm.decode import _cache_kwarg, _new_cache, left_padded
from agentrt.llm.hf import HFBackend
from agentrt.llm.lean import LeanDecoder
from agentrt.llm.quant import INT8_ROWS

PROMPTS = ["What is 12 plus 30?", "Name the capital of France.",
           "Write the numbers from one to five."]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def logits_per_step(model, lean, seqs: list[list[int]], steps: int) -> list[torch.Tensor]:
    """Prefill `seqs` with the forward, then feed the forward's greedy tokens for `steps` steps
    through `lean.step` (or the forward when `lean` is None); the logits of each step."""
    ids, mask = left_padded(seqs, 0, "cpu")
    cache, out = _new_cache(), []
    with torch.inference_mode():
        first = model(input_ids=ids, attention_mask=mask,
                      position_ids=(mask.cumsum(-1) - 1).clamp(min=0), use_cache=True,
                      logits_to_keep=1, **{_cache_kwarg(type(model)): cache}).logits[:, -1].float()
        tokens = first.argmax(-1)
        for _ in range(steps):
            mask = torch.cat([mask, mask.new_ones((len(seqs), 1))], -1)
            positions = mask.sum(-1, keepdim=True) - 1
            if lean is None:
                logits = model(input_ids=tokens[:, None], attention_mask=mask,
                               position_ids=positions, use_cache=True, logits_to_keep=1,
                               past_key_values=cache).logits[:, -1].float()
            else:
                logits = lean.step(tokens, mask, positions, cache)
            out.append(logits)
            tokens = logits.argmax(-1)
    return out


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="fp32")
    yield backend
    backend.close()


def test_one_row_gets_the_forwards_logits_exactly(tiny):
    seq = [[5, 17, 99, 230, 4, 8, 15, 16, 23, 42]]
    ours = logits_per_step(tiny.model, tiny.lean, seq, 12)
    theirs = logits_per_step(tiny.model, None, seq, 12)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_a_left_padded_batch_gets_the_forwards_logits(tiny):
    seqs = [[5, 17, 99, 230, 4, 8, 15, 16, 23, 42], [7, 7, 7], [300, 301]]
    ours = logits_per_step(tiny.model, tiny.lean, seqs, 12)
    theirs = logits_per_step(tiny.model, None, seqs, 12)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_the_forward_still_works_on_the_fused_weights(tiny):
    # fusing made q, k, v (and gate, up) views of one tensor: same values, one storage
    attn = tiny.model.model.layers[0].self_attn
    assert attn.q_proj.weight.untyped_storage().data_ptr() == \
        attn.v_proj.weight.untyped_storage().data_ptr()
    assert tiny.chat(ChatRequest.of("hi", max_tokens=4)).text is not None


def test_int8_steps_of_many_rows_multiply_the_fused_rounded_copies(tiny_llama_dir):
    backend = HFBackend(str(tiny_llama_dir), device="cpu", dtype="int8")
    try:
        attn = backend.model.model.layers[0].self_attn
        assert attn.q_proj.copy.untyped_storage().data_ptr() == \
            attn.v_proj.copy.untyped_storage().data_ptr()
        for rows in (2, INT8_ROWS + 2):  # the int8 kernel, then the copies
            seqs = [[5 + i, 17, 99, 230, 4] for i in range(rows)]
            ours = logits_per_step(backend.model, backend.lean, seqs, 6)
            theirs = logits_per_step(backend.model, None, seqs, 6)
            for a, b in zip(ours, theirs):
                torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    finally:
        backend.close()


@pytest.mark.parametrize("dtype", ["fp32", "int8", "int4"])
def test_greedy_replies_are_the_forwards_on_the_embedded_model(smollm2_dir, dtype):
    lean = HFBackend(str(smollm2_dir), device="cpu", dtype=dtype)
    plain = HFBackend(str(smollm2_dir), device="cpu", dtype=dtype, lean_decode=False)
    try:
        assert lean.lean is not None and plain.lean is None
        for prompt in PROMPTS:  # one at a time: batch 1, where the two are bit for bit equal
            request = ChatRequest.of(prompt, max_tokens=40)
            assert lean.chat(request).text == plain.chat(request).text, prompt
    finally:
        lean.close()
        plain.close()


def test_models_it_does_not_cover_keep_the_forward():
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    small = dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                 num_attention_heads=2, num_key_value_heads=1)
    assert LeanDecoder.build(MistralForCausalLM(MistralConfig(**small, sliding_window=8))) is None
    assert LeanDecoder.build(LlamaForCausalLM(LlamaConfig(**small, attention_bias=True))) is None
    assert LeanDecoder.build(LlamaForCausalLM(LlamaConfig(**small))) is not None
    assert LeanDecoder.build(object()) is None


def on_grid_tiny(root, smollm2_dir, hidden: int, off_grid: tuple[str, ...] = ()):
    """A tiny random Llama saved under `root / "base"` with its linear weights (the output
    layer and `off_grid` excepted) moved onto a 4-bit grid, as the embedded base's are."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agentrt.llm.quant import quantize_int4
    from agentrt.llm.tiny import build_tiny_llama

    tiny = build_tiny_llama(root / "random", vocab_from=smollm2_dir, hidden_size=hidden, seed=0)
    base = AutoModelForCausalLM.from_pretrained(tiny)
    rounded = AutoModelForCausalLM.from_pretrained(tiny, dtype=torch.bfloat16)
    quantize_int4(rounded, only_on_grid=False)
    with torch.no_grad():
        for name, module in base.named_modules():
            if isinstance(module, torch.nn.Linear) and name not in ("lm_head", *off_grid):
                module.weight.copy_(rounded.get_submodule(name).weight.float())
    base.save_pretrained(root / "base")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(root / "base")
    return root / "base"


@pytest.fixture(scope="module", params=[32, 64])
def adapter_dir(request, smollm2_dir, tmp_path_factory):
    """A random LoRA adapter on the second layer of a tiny Llama (the first has none). Hidden
    size 32: q, k and v are 32 rows each, so the lean step multiplies them one by one; 64: whole
    packed blocks, one fused product with the adapters' factors side by side."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("adapter")
    base = on_grid_tiny(root, smollm2_dir, request.param)
    torch.manual_seed(2)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                           LoraConfig(r=4, target_modules=TARGETS, layers_to_transform=[1],
                                      init_lora_weights=False))
    model.save_pretrained(root / "adapter")
    return root / "adapter"


def test_a_layer_left_unrounded_beside_rounded_ones_gets_the_forwards_logits(smollm2_dir,
                                                                             tmp_path):
    # k off the grid: it stays bf16 while q and v go to 4 bits, so q, k, v cannot be one product
    base = on_grid_tiny(tmp_path, smollm2_dir, 64, off_grid=("model.layers.0.self_attn.k_proj",))
    backend = HFBackend(str(base), device="cpu", dtype="int4")
    try:
        attn = backend.model.model.layers[0].self_attn
        assert hasattr(attn.q_proj, "weight_int4") and isinstance(attn.k_proj, torch.nn.Linear)
        seq = [[5, 17, 99, 230, 4, 8, 15, 16, 23, 42]]
        ours = logits_per_step(backend.model, backend.lean, seq, 8)
        theirs = logits_per_step(backend.model, None, seq, 8)
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    finally:
        backend.close()


def test_the_backend_keeps_the_adapter_unmerged_and_the_lean_step_matches_the_forward(
        adapter_dir):
    backend = HFBackend(str(adapter_dir), device="cpu", dtype="int4")
    try:
        layers = backend.model.model.layers
        assert layers[1].self_attn.q_proj.lora_a is not None
        assert layers[0].self_attn.q_proj.lora_a is None
        assert hasattr(backend.model.lm_head, "weight_int8")  # the output layer: int8 per channel
        seq = [[5, 17, 99, 230, 4, 8, 15, 16, 23, 42]]
        ours = logits_per_step(backend.model, backend.lean, seq, 12)
        theirs = logits_per_step(backend.model, None, seq, 12)
        for a, b in zip(ours, theirs):  # equal, or (factors side by side) up to bf16 rounding
            torch.testing.assert_close(a, b, rtol=0.02, atol=0.02 * float(b.abs().max()))
        assert backend.chat(ChatRequest.of("hello there", max_tokens=6)).usage.completion_tokens
    finally:
        backend.close()
