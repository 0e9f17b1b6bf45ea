"""Batched decoding: rows leave the batch as they finish (ours) against transformers' `generate`.

    .venv/bin/python benchmarks/bench_decode.py                 # embedded model, batch 16
    .venv/bin/python benchmarks/bench_decode.py --batch 8 --max-tokens 128 --repeat 3

The same batch of real prompts (the compact fast-answer prompt on generated arithmetic and word
problems, whose greedy replies end anywhere between a few and `--max-tokens` tokens) is decoded
greedily by `model.generate` and by the hf backend's own loop (`agentrt.llm.decode.decode_rows`),
alternating which goes first, best of `--repeat`. Both must produce the same tokens (checked);
the figure is useful tokens per second and the ratio of wall times. Nothing is asserted here.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--home", default=None)
    args = p.parse_args()

    import torch
    from transformers import GenerationConfig

    from agentrt.llm.decode import decode_rows
    from agentrt.llm.hf import HFBackend, _Row
    from agentrt.core.types import ChatRequest, SamplingParams
    from agentrt.data_synth.generators import generate
    from agentrt.workflows.prompts import render

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = HFBackend("smollm2-135m", device="cpu", home=args.home)
    problems = [*generate("arithmetic", args.batch // 2, seed=5, difficulty=2),
                *generate("word", args.batch - args.batch // 2, seed=5, difficulty=2)]
    rows = []
    for prob in problems:
        messages = list(render("fast_answer", "compact", problem=prob.text).messages)
        request = ChatRequest(messages=messages, params=SamplingParams(max_tokens=args.max_tokens))
        rows.append(_Row(0, backend._prepare(request).prompt_ids, args.max_tokens, []))  # noqa: SLF001
    width = max(len(r.prompt_ids) for r in rows)
    ids = torch.full((len(rows), width), backend._pad, dtype=torch.long)  # noqa: SLF001
    mask = torch.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r.prompt_ids):] = torch.tensor(r.prompt_ids)
        mask[i, width - len(r.prompt_ids):] = 1
    eos = backend._eos  # noqa: SLF001
    config = GenerationConfig(max_new_tokens=args.max_tokens, do_sample=False,
                              eos_token_id=sorted(eos), pad_token_id=backend._pad)  # noqa: SLF001

    def useful(tokens: list[int]) -> list[int]:
        end = next((k for k, t in enumerate(tokens) if t in eos), None)
        return tokens[: end + 1] if end is not None else tokens

    def run_generate() -> list[list[int]]:
        out = backend.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        return [useful(t) for t in out[:, width:].tolist()]

    def run_ours() -> list[list[int]]:
        gen, _ = decode_rows(backend.model, rows, ids, mask, [], SamplingParams(max_tokens=1),
                              eos, None, None)
        return [useful(t) for t in gen]

    best = {"generate": float("inf"), "ours": float("inf")}
    outputs = {}
    runs = {"generate": run_generate, "ours": run_ours}
    with torch.inference_mode():
        for i in range(args.repeat):
            for name in (("generate", "ours") if i % 2 == 0 else ("ours", "generate")):
                t0 = time.perf_counter()
                outputs[name] = runs[name]()
                best[name] = min(best[name], time.perf_counter() - t0)
    same = outputs["generate"] == outputs["ours"]
    lengths = sorted(len(t) for t in outputs["ours"])
    tokens = sum(lengths)
    print(f"batch {len(rows)}, reply lengths {lengths[0]}-{lengths[-1]} (median "
          f"{lengths[len(lengths) // 2]}), {tokens} useful tokens, threads "
          f"{torch.get_num_threads()}, identical outputs: {same}")
    for name, wall in best.items():
        print(f"{name:>8}: {wall:6.1f} s, {tokens / wall:6.1f} useful tokens/s")
    print(f"speed-up of ours over generate: {best['generate'] / best['ours']:.2f}x")
    backend.close()


if __name__ == "__main__":
    main()
