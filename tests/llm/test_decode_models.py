"""The decode loop on other attention layouts: sliding windows (Mistral) and values with their
own head size (DeepSeek's MLA), with joins and the prefix cache, against transformers' own."""

from __future__ import annotations

import pytest
import torch

from agentrt.llm.decode import DecodeBatch, _new_cache
from agentrt.llm.prefix import PrefixCache
from agentrt.core.types import SamplingParams

GREEDY = SamplingParams(max_tokens=1)


class Row:
    def __init__(self, ids: list[int], max_tokens: int = 10):
        self.prompt_ids, self.max_tokens, self.stop = ids, max_tokens, []


def padded(rows: list[Row]) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
        mask[i, width - len(r.prompt_ids):] = 1
    return ids, mask


def run(model, groups: list[list[Row]], prefixes: PrefixCache | None = None) -> list[list[int]]:
    """Each group joins the running batch one step after the previous one."""
    batch = DecodeBatch(model, GREEDY, set(), str, [], 0, prefixes)
    got = {}
    with torch.inference_mode():
        for group in groups:
            batch.add(group, *padded(group))
            for row, tokens, _ in batch.step():
                got[id(row)] = tokens
        while len(batch):
            for row, tokens, _ in batch.step():
                got[id(row)] = tokens
    return [got[id(r)] for group in groups for r in group]


def generate(model, row: Row) -> list[int]:
    ids = torch.tensor([row.prompt_ids])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=row.max_tokens, min_new_tokens=row.max_tokens,
                             pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def mistral(window: int):
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(0)
    return MistralForCausalLM(MistralConfig(
        vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, sliding_window=window,
        max_position_embeddings=256, attn_implementation="sdpa")).eval()


def deepseek_mla():
    transformers = pytest.importorskip("transformers")
    if not hasattr(transformers, "DeepseekV3Config"):
        pytest.skip("this transformers has no DeepSeek-V3")
    torch.manual_seed(0)
    return transformers.DeepseekV3ForCausalLM(transformers.DeepseekV3Config(
        vocab_size=200, hidden_size=32, intermediate_size=64, moe_intermediate_size=16,
        num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, n_routed_experts=4,
        num_experts_per_tok=2, n_shared_experts=1, first_k_dense_replace=1, n_group=1,
        topk_group=1, q_lora_rank=None, kv_lora_rank=16, qk_rope_head_dim=8,
        qk_nope_head_dim=16, v_head_dim=16, max_position_embeddings=256,
        attn_implementation="sdpa")).eval()


def test_a_sliding_window_model_reusing_prefixes_in_a_mixed_group_decodes_as_alone():
    model = mistral(window=8)
    start = [(7 * k) % 190 + 5 for k in range(30)]
    seen = Row(start + [3, 4, 5])
    short, long = Row(start + [9]), Row(start + list(range(20, 40)))
    fresh = Row(list(range(100, 112)))
    alone = [generate(model, r) for r in (short, long, fresh)]
    prefixes = PrefixCache(min_tokens=4)
    run(model, [[seen]], prefixes)  # stores the shared start
    assert run(model, [[short, long, fresh]], prefixes) == alone
    assert prefixes.stats.hits >= 2


def test_values_with_their_own_head_size_decode_and_join():
    model = deepseek_mla()
    a, b = Row(list(range(1, 9))), Row(list(range(40, 60)))
    assert run(model, [[a], [b]]) == [generate(model, a), generate(model, b)]


def test_roomy_layers_forget_their_room_when_reset_or_reselected():
    cache = _new_cache()
    k = torch.randn(4, 2, 3, 8)
    cache.update(k, k.clone(), 0)
    layer = cache.layers[0]
    layer.batch_select_indices(torch.tensor([0, 1, 2, 3]))  # same rows, new tensors
    step = torch.randn(4, 2, 1, 8)
    keys, _ = layer.update(step, step.clone())
    assert torch.equal(keys[:, :, :3], k) and torch.equal(keys[:, :, 3:], step)
    layer.reset()
    one = torch.randn(1, 2, 2, 8)
    keys, values = layer.update(one, one.clone())
    assert keys.shape == (1, 2, 2, 8) and torch.equal(keys, one) and torch.equal(values, one)
