"""A tiny random Llama with the real SmolLM2 tokenizer, for fast backend and training tests.

The model is a few megabytes (most of it the 49,152-token embedding), so loading, generating and
training steps take milliseconds to a second on CPU. Its weights are random, so its text is
nonsense: tests use it for shapes, batching, padding, sampling and constraint mechanics, never for
answers. This module knows nothing about backends or training.
"""

from __future__ import annotations

from pathlib import Path

from agentrt.llm.models import pull_model

__all__ = ["build_tiny_llama"]


def build_tiny_llama(
    path: str | Path,
    vocab_from: str | Path | None = None,
    seed: int = 0,
    hidden_size: int = 32,
    home: str | Path | None = None,
) -> Path:
    """Build and save a tiny random Llama (2 layers, 2 heads) with a real tokenizer.

    Args:
        path: output directory (created; files in it are overwritten).
        vocab_from: a model directory whose tokenizer to use; defaults to the embedded SmolLM2
            model, pulled into `home` if needed.
        seed: weights are a pure function of the seed and sizes.
        hidden_size: 16 to 64, even.
        home: agentrt home used only when `vocab_from` is None.

    Returns:
        The directory, loadable with `from_pretrained` or the hf backend.

    Raises:
        ValueError: hidden_size out of range.

    Example:
        >>> build_tiny_llama("/tmp/tiny")  # doctest: +SKIP
        PosixPath('/tmp/tiny')
    """
    import torch  # heavy: torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM  # heavy: transformers

    if not 16 <= hidden_size <= 64 or hidden_size % 2:
        raise ValueError("hidden_size must be an even number from 16 to 64")
    if vocab_from is None:
        vocab_from = pull_model("smollm2-135m", home=home, progress=False)
    tok = AutoTokenizer.from_pretrained(str(vocab_from))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        # Wider than the usual 0.02 so greedy text differs from prompt to prompt instead of
        # repeating one token: batching and padding tests need outputs that can disagree.
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).to(torch.float32)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.bos_token_id = tok.bos_token_id
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out
