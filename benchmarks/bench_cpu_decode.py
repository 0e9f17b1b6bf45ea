"""CPU decode speed of the embedded model by weight precision, through the hf backend.

For each `--dtypes` entry the backend is built on CPU and greedy chat requests of
`--max-tokens` tokens run one at a time (batch 1) and eight at once (the backend's continuous
batching; `--batches` names other widths), rounds alternating between precisions so a noisy
machine treats them alike. An entry ending in `:forward` runs every decode step through
transformers' forward instead of the lean step (`lean_decode=False`). Figures: generated tokens
per second (best round), and how often the reply equals the first entry's reply.

    .venv/bin/python benchmarks/bench_cpu_decode.py
    .venv/bin/python benchmarks/bench_cpu_decode.py --dtypes fp32:forward fp32 int4 --rounds 3
    .venv/bin/python benchmarks/bench_cpu_decode.py --dtypes fp32 int8 --batches 1 8 32
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from concurrent.futures import ThreadPoolExecutor

from agentrt.core.types import ChatRequest
from agentrt.data_synth.generators import generate
from agentrt.llm.hf import HFBackend

BATCH = 8  # the default second width, and the prompts saved for bench_llamacpp.py


def prompts(n: int) -> list[str]:
    problems = [*generate("arithmetic", n // 2, seed=11, difficulty=2),
                *generate("word", n - n // 2, seed=11, difficulty=2)]
    return [f"{p.text}\nExplain step by step, then give the answer." for p in problems]


def run(backend: HFBackend, texts: list[str], max_tokens: int,
        batch: int) -> tuple[float, list[str]]:
    """Seconds and replies for `texts`, `batch` requests in flight at once."""
    reqs = [ChatRequest.of(t, max_tokens=max_tokens, temperature=0.0) for t in texts]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(batch) as pool:
        replies = list(pool.map(backend.chat, reqs))
    wall = time.perf_counter() - t0
    return wall, replies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16", "int8", "int4"])
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batches", nargs="+", type=int, default=[1, BATCH],
                    help="requests in flight at once, one measurement each (prompts: twice the "
                         "width for batch 1, else the width)")
    ap.add_argument("--home", default=None)
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--save-prompts", default=None,
                    help="write the prompts to this JSON file (for bench_llamacpp.py) and stop")
    args = ap.parse_args()
    if args.save_prompts:
        Path(args.save_prompts).write_text(json.dumps({"one": prompts(2), "eight": prompts(BATCH)}))
        return
    texts = {b: prompts(2 if b == 1 else b) for b in args.batches}
    best: dict[tuple[str, int], float] = {}
    replies: dict[tuple[str, int], list[str]] = {}
    for r in range(args.rounds):
        order = args.dtypes if r % 2 == 0 else list(reversed(args.dtypes))
        for d in order:
            # one backend at a time: each decode thread has its own CPU thread pool, and idle
            # pools beside a busy one slow it down (agentrt.core.threads.on_own_thread)
            backend = HFBackend(args.model, device="cpu", dtype=d.split(":")[0], home=args.home,
                                max_batch_size=max(args.batches),
                                lean_decode=not d.endswith(":forward"))
            run(backend, texts[args.batches[0]][:1], 8, 1)  # warm up: lazy initialisation
            for batch in args.batches:
                wall, out = run(backend, texts[batch], args.max_tokens, batch)
                tokens = sum(x.usage.completion_tokens for x in out)
                best[(d, batch)] = max(best.get((d, batch), 0.0), tokens / wall)
                replies[(d, batch)] = [x.text for x in out]
            backend.close()
    report, ref = {}, args.dtypes[0]
    for d in args.dtypes:
        for batch in args.batches:
            same = sum(a == b for a, b in zip(replies[(d, batch)], replies[(ref, batch)]))
            report[f"{d} batch {batch}"] = {
                "tokens_per_s": round(best[(d, batch)], 1),
                f"vs_{ref}": round(best[(d, batch)] / best[(ref, batch)], 2),
                f"replies_equal_to_{ref}": f"{same}/{len(replies[(d, batch)])}"}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
