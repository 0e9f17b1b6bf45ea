"""Did training make the model forget plain chat? The trained model against its base on everyday
requests that have nothing to do with the runtime's prompts.

    python benchmarks/bench_forgetting.py --trained smollm2-135m-agentrt --base smollm2-135m

For each request (a fixed list of everyday chat prompts written for this benchmark,
`agentrt.data_synth.general.HELDOUT_REQUESTS`, never in training data) the base
model writes a greedy reply through the model's own chat template. Then, for both models:

- the mean negative log-likelihood per token of the base's replies (how far the trained model
  moved away from what the base says; 0 nats more means nothing was forgotten),
- the KL divergence KL(base || trained) of the next-token distributions over those replies,
- the share of requests whose greedy reply by the trained model starts like the base's (the
  first 16 tokens identical),

and prints a few replies of both side by side. Deterministic (greedy); CPU is enough. The base
always runs in fp32; `--trained-dtype` loads the trained model in another precision of the hf
backend (bf16, or int8 / int4 weights, as `agentrt.llm.hf_load` quantizes them), so the figures
also say what a precision costs on plain chat:

    python benchmarks/bench_forgetting.py --trained smollm2-135m-agentrt --trained-dtype int4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from agentrt.data_synth.general import HELDOUT_REQUESTS

# Written for this benchmark; the training loop's general data never contains them.
PROMPTS = HELDOUT_REQUESTS


def _load(name: str, home: str | None, dtype: str = "fp32"):
    """(tokenizer, model) as the hf backend loads them: an adapter merged into its base (kept
    beside it for int4), then int8 / int4 weights where asked."""
    from agentrt.llm.hf_load import load_model, pick_dtype
    from agentrt.llm.models import resolve_model
    from agentrt.llm.quant import quantize

    path = resolve_model(name, home, progress=False)
    model, tok = load_model(path, "cpu", home, pick_dtype(dtype, "cpu"),
                            merge_adapter=dtype != "int4")
    quantize(model, dtype)
    return tok, model


def _prompt_ids(tok, text: str):
    ids = tok.apply_chat_template([{"role": "user", "content": text}],
                                  add_generation_prompt=True, return_tensors="pt")
    return ids if hasattr(ids, "shape") else ids["input_ids"]


def _greedy(tok, model, text: str, max_new: int):
    import torch

    ids = _prompt_ids(tok, text)
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new,
                             do_sample=False, pad_token_id=tok.eos_token_id)
    return ids, out[0, ids.shape[1]:]


def _logprobs(model, ids, reply):
    """Log-probabilities of the next token at each reply position, (len(reply), vocab)."""
    import torch

    full = torch.cat([ids[0], reply]).unsqueeze(0)
    with torch.no_grad():
        logits = model(full).logits[0, ids.shape[1] - 1:-1]
    return torch.log_softmax(logits.float(), dim=-1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trained", default="smollm2-135m-agentrt")
    ap.add_argument("--trained-dtype", default="fp32", choices=["fp32", "bf16", "int8", "int4"])
    ap.add_argument("--base", default="smollm2-135m")
    ap.add_argument("--max-new", type=int, default=64)
    ap.add_argument("--home", default=None)
    ap.add_argument("--show", type=int, default=3, help="replies printed side by side")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N requests")
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    args = ap.parse_args()
    import torch

    started = time.perf_counter()
    tok, base = _load(args.base, args.home)
    _, trained = _load(args.trained, args.home, args.trained_dtype)
    nll_base, nll_trained, kl, same, tokens, shown = 0.0, 0.0, 0.0, 0, 0, []
    prompts = PROMPTS[:args.limit] if args.limit else PROMPTS
    for i, text in enumerate(prompts):
        ids, reply = _greedy(tok, base, text, args.max_new)
        lp_b, lp_t = _logprobs(base, ids, reply), _logprobs(trained, ids, reply)
        pos = torch.arange(len(reply))
        nll_base -= float(lp_b[pos, reply].sum())
        nll_trained -= float(lp_t[pos, reply].sum())
        kl += float((lp_b.exp() * (lp_b - lp_t)).sum())
        tokens += len(reply)
        _, mine = _greedy(tok, trained, text, args.max_new)
        same += int(mine[:16].tolist() == reply[:16].tolist())
        if i < args.show:
            shown.append({"prompt": text, "base": tok.decode(reply, skip_special_tokens=True),
                          "trained": tok.decode(mine, skip_special_tokens=True)})
    n = len(prompts)
    figures = {"prompts": n, "trained_dtype": args.trained_dtype, "reply_tokens": tokens,
               "nll_base_per_token": round(nll_base / tokens, 4),
               "nll_trained_per_token": round(nll_trained / tokens, 4),
               "kl_base_trained_per_token": round(kl / tokens, 4),
               "same_first_16_tokens": f"{same}/{n}",
               "wall_s": round(time.perf_counter() - started, 1), "examples": shown}
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
