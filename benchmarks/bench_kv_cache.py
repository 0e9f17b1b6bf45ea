"""Decode step time with the hf backend's roomy KV-cache layers against transformers' own.

    .venv/bin/python benchmarks/bench_kv_cache.py
    .venv/bin/python benchmarks/bench_kv_cache.py --steps 64 --repeat 3 --threads 1

`DynamicLayer.update` concatenates, so every step copies the whole cache; the roomy layers
(`agentrt.llm.decode`) write the new column into spare room. For 1 and 8 rows and a short and a
long prompt, the same batch is decoded greedily (no end-of-text, so every row runs `--steps`
steps) with each cache kind, alternating which goes first; the figure is the mean step time,
best of `--repeat`. Both kinds must give the same tokens (checked). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

TEXT = "Name a fruit that is red. Explain the colour of apples, cherries and strawberries. "


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=48)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--home", default=None)
    args = p.parse_args()

    import torch
    from transformers import DynamicCache

    import agentrt.llm.decode as decode
    from agentrt.llm.hf import HFBackend, _Row
    from agentrt.core.types import ChatRequest, SamplingParams

    if args.threads:
        torch.set_num_threads(args.threads)
    backend = HFBackend("smollm2-135m", device="cpu", home=args.home)
    kinds = {"concatenating": DynamicCache, "roomy": decode._new_cache}

    def run(rows: list, kind: str) -> tuple[float, list]:
        decode._new_cache = kinds[kind]
        batch = decode.DecodeBatch(backend.model, SamplingParams(max_tokens=1), set(),
                                   backend._decode, [], backend._pad)
        out = {}
        with torch.inference_mode():
            batch.add(rows, *backend._padded(rows))
            start, steps = time.perf_counter(), 0
            while len(batch):
                for row, tokens, _ in batch.step():
                    out[id(row)] = tokens
                steps += 1
        return (time.perf_counter() - start) / steps * 1000, [out[id(r)] for r in rows]

    print(f"{'prompt':>7} {'rows':>4} {'concatenating ms/step':>22} {'roomy ms/step':>14} {'ratio':>6}")
    try:
        for repeats in (1, 20):
            for n in (1, 8):
                rows = []
                for i in range(n):
                    job = backend._prepare(ChatRequest.of(f"{i}. {TEXT * repeats}", max_tokens=args.steps))
                    rows.append(_Row(job, job.prompt_ids, args.steps, []))
                best = {kind: float("inf") for kind in kinds}
                tokens = {}
                for r in range(args.repeat):
                    for kind in (list(kinds) if r % 2 == 0 else list(kinds)[::-1]):
                        ms, tokens[kind] = run(rows, kind)
                        best[kind] = min(best[kind], ms)
                assert tokens["concatenating"] == tokens["roomy"], "the cache kinds disagree"
                print(f"{len(rows[0].prompt_ids):>7} {n:>4} {best['concatenating']:>22.1f} "
                      f"{best['roomy']:>14.1f} {best['concatenating'] / best['roomy']:>5.2f}x")
    finally:
        decode._new_cache = kinds["roomy"]


if __name__ == "__main__":
    main()
