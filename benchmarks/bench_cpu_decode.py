"""CPU decode speed of the embedded model by weight precision, through the hf backend.

For each `--dtypes` entry the backend is built on CPU and greedy chat requests of
`--max-tokens` tokens run one at a time (batch 1) and eight at once (the backend's continuous
batching), rounds alternating between precisions so a noisy machine treats them alike. Figures:
generated tokens per second (best round), and how often the reply equals fp32's reply.

    .venv/bin/python benchmarks/bench_cpu_decode.py
    .venv/bin/python benchmarks/bench_cpu_decode.py --dtypes fp32 int8 --max-tokens 128 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor

from agentrt.core.types import ChatRequest
from agentrt.data_synth.generators import generate
from agentrt.llm.hf import HFBackend

BATCH = 8


def prompts(n: int) -> list[str]:
    problems = [*generate("arithmetic", n // 2, seed=11, difficulty=2),
                *generate("word", n - n // 2, seed=11, difficulty=2)]
    return [f"{p.text}\nExplain step by step, then give the answer." for p in problems]


def run(backend: HFBackend, texts: list[str], max_tokens: int, batch: int) -> tuple[float, list[str]]:
    """Seconds and replies for `texts`, `batch` requests in flight at once."""
    reqs = [ChatRequest.of(t, max_tokens=max_tokens, temperature=0.0) for t in texts]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(batch) as pool:
        replies = list(pool.map(backend.chat, reqs))
    wall = time.perf_counter() - t0
    return wall, replies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "int8"])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--home", default=None)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    backends = {d: HFBackend(args.model, device="cpu", dtype=d, home=args.home, max_batch_size=BATCH)
                for d in args.dtypes}
    one, eight = prompts(2), prompts(BATCH)
    for b in backends.values():  # warm up: first calls pay for lazy initialisation
        run(b, one[:1], 8, 1)
    best: dict[tuple[str, int], float] = {}
    replies: dict[tuple[str, int], list[str]] = {}
    for r in range(args.rounds):
        order = args.dtypes if r % 2 == 0 else list(reversed(args.dtypes))
        for d in order:
            for batch, texts in ((1, one), (BATCH, eight)):
                wall, out = run(backends[d], texts, args.max_tokens, batch)
                tokens = sum(x.usage.completion_tokens for x in out)
                best[(d, batch)] = max(best.get((d, batch), 0.0), tokens / wall)
                replies[(d, batch)] = [x.text for x in out]
    report = {}
    for d in args.dtypes:
        for batch in (1, BATCH):
            same = sum(a == b for a, b in zip(replies[(d, batch)], replies[("fp32", batch)]))
            report[f"{d} batch {batch}"] = {
                "tokens_per_s": round(best[(d, batch)], 1),
                "vs_fp32": round(best[(d, batch)] / best[("fp32", batch)], 2),
                "replies_equal_to_fp32": f"{same}/{len(replies[(d, batch)])}"}
    print(json.dumps(report, indent=2))
    for b in backends.values():
        b.close()


if __name__ == "__main__":
    main()
