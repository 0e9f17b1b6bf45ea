"""The tiny random Llama builder."""

from __future__ import annotations

import pytest

from agentrt.llm.tiny import build_tiny_llama


def test_tiny_llama_shape_and_tokenizer(tiny_llama_dir, smollm2_dir):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_llama_dir)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (32, 2, 2)
    tiny_tok, real_tok = AutoTokenizer.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(smollm2_dir)
    assert config.vocab_size == len(real_tok)
    text = "What is 2+3? <|im_end|>"
    assert tiny_tok(text).input_ids == real_tok(text).input_ids
    assert tiny_tok.chat_template == real_tok.chat_template


def test_tiny_llama_is_deterministic_per_seed(tiny_llama_dir, smollm2_dir, tmp_path):
    from safetensors.torch import load_file

    again = build_tiny_llama(tmp_path / "again", vocab_from=smollm2_dir, seed=0)
    other = build_tiny_llama(tmp_path / "other", vocab_from=smollm2_dir, seed=1)
    first = load_file(tiny_llama_dir / "model.safetensors")
    same, different = load_file(again / "model.safetensors"), load_file(other / "model.safetensors")
    assert first.keys() == same.keys()
    assert all((first[k] == same[k]).all() for k in first)
    assert any(not (first[k] == different[k]).all() for k in first)


def test_hidden_size_is_validated(tmp_path, smollm2_dir):
    with pytest.raises(ValueError):
        build_tiny_llama(tmp_path, vocab_from=smollm2_dir, hidden_size=8)
