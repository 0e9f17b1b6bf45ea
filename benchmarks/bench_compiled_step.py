"""CPU decode steps of the embedded model, eager against torch.compile, outside the hf backend.

A plain greedy loop over `model.forward` with transformers' dynamic cache, an attention mask and
positions (what the backend's decode step passes), batch 1: eager, and compiled with dynamic
shapes (inductor; one graph serves a growing cache), for fp32 weights and for the backend's
weight-only int8 (`quantize_int8`). Figures: steady tokens/s (second pass), seconds of the first
pass (compiling included) and the first words decoded, to see where greedy choices move.

    .venv/bin/python benchmarks/bench_compiled_step.py
    .venv/bin/python benchmarks/bench_compiled_step.py --variants int8 int8+compile --tokens 96
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from agentrt.llm.hf_load import load_model
from agentrt.llm.models import resolve_model
from agentrt.llm.quant import quantize_int8

PROMPT = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many "
          "clips in May. How many clips did Natalia sell altogether in April and May? "
          "Explain step by step.")


def decode(model, ids, tokens: int, forward) -> tuple[float, list[int]]:
    """Seconds for `tokens` greedy steps after the prompt's prefill, and the tokens."""
    from transformers import DynamicCache

    cache, mask = DynamicCache(), torch.ones_like(ids)
    out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    token = out.logits[:, -1].argmax(-1, keepdim=True)
    picked = [int(token)]
    started = time.perf_counter()
    for _ in range(tokens):
        mask = torch.cat([mask, mask.new_ones((1, 1))], -1)
        out = forward(input_ids=token, past_key_values=cache, use_cache=True, logits_to_keep=1,
                      attention_mask=mask, position_ids=mask.sum(-1, keepdim=True) - 1)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        picked.append(int(token))
    return time.perf_counter() - started, picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+",
                    default=["fp32", "fp32+compile", "int8", "int8+compile"])
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    report = {}
    for variant in args.variants:
        model, tok = load_model(resolve_model(args.model, None), "cpu", None, torch.float32)
        if variant.startswith("int8"):
            quantize_int8(model)
        forward = torch.compile(model.forward, dynamic=True) if "+compile" in variant else model
        ids = tok.apply_chat_template([{"role": "user", "content": PROMPT}],
                                      add_generation_prompt=True, return_tensors="pt")
        ids = ids if torch.is_tensor(ids) else ids["input_ids"]
        with torch.inference_mode():
            first, _ = decode(model, ids, args.tokens, forward)
            steady, picked = decode(model, ids, args.tokens, forward)
        report[variant] = {"tokens_per_s": round(args.tokens / steady, 1),
                           "first_pass_s": round(first, 1),
                           "start": tok.decode(picked)[:80]}
        torch._dynamo.reset()
    base = report.get("fp32", {}).get("tokens_per_s")
    for row in report.values():
        row["vs_fp32"] = round(row["tokens_per_s"] / base, 2) if base else None
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
