"""hf backend decode throughput at batch 1 and batch 8 on the embedded model.

Runs the same 8 prompts greedily with 64 new tokens, first one request at a time, then all 8 in
one `chat_batch`, and prints a table of generated tokens, wall seconds, tokens per second and
tokens per CPU-second of this process (counted from the backend's measured usage, so rows that
end early at EOS count only what they produced). On a shared machine the wall figures move with
other load; tokens per CPU-second shows how much work batching saves regardless.

    python benchmarks/bench_backend.py                 # embedded smollm2-135m, device auto
    python benchmarks/bench_backend.py --device cuda --model /path/to/model --batch 32
"""

from __future__ import annotations

import argparse
import time

from agentrt.llm.hf import HFBackend
from agentrt.core.types import ChatRequest

PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how photosynthesis works, step by step.",
    "Describe a busy market in a coastal town at dawn.",
    "List ten uses for a paperclip and explain each one.",
    "Write a letter to a friend about your favourite book.",
    "Explain the rules of chess to a beginner.",
    "Describe how to bake bread at home from scratch.",
    "Tell me about the history of the bicycle.",
]


def run(backend: HFBackend, requests: list[ChatRequest], batch: int) -> tuple[int, float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    if batch == 1:
        responses = [backend.chat_batch([r])[0] for r in requests]
    else:
        responses = []
        for k in range(0, len(requests), batch):
            responses += backend.chat_batch(requests[k : k + batch])
    tokens = sum(r.usage.completion_tokens for r in responses)
    return tokens, time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=1, help="prompt list repeated this many times")
    args = ap.parse_args()

    backend = HFBackend(args.model, device=args.device, max_batch_size=args.batch)
    prompts = PROMPTS * args.repeat
    requests = [ChatRequest.of(p, max_tokens=args.max_tokens) for p in prompts]
    backend.chat_batch(requests[:1])  # warm-up
    rows = []
    for batch in (1, args.batch):
        tokens, seconds, cpu = run(backend, requests, batch)
        rows.append((batch, tokens, seconds, tokens / seconds, tokens / cpu))
    print(f"model={args.model} device={backend.device} prompts={len(prompts)} max_tokens={args.max_tokens}")
    print(f"{'batch':>5} {'tokens':>7} {'seconds':>8} {'tokens/s':>9} {'tokens/cpu-s':>13}")
    for batch, tokens, seconds, rate, per_cpu in rows:
        print(f"{batch:>5} {tokens:>7} {seconds:>8.2f} {rate:>9.1f} {per_cpu:>13.1f}")
    print(f"ratio batch {args.batch} / batch 1: {rows[1][3] / rows[0][3]:.2f}x tokens/s, {rows[1][4] / rows[0][4]:.2f}x tokens/cpu-s")
    backend.close()


if __name__ == "__main__":
    main()
