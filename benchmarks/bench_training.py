"""Training throughput of our wrappers against TRL called directly, and where a run's time goes.

    .venv/bin/python benchmarks/bench_training.py                       # tiny Llama, SFT + DPO
    .venv/bin/python benchmarks/bench_training.py --model smollm2-135m --steps 8 --threads 2
    .venv/bin/python benchmarks/bench_training.py --run runs/iterate-cpu   # stage shares only
    .venv/bin/python benchmarks/bench_training.py --model smollm2-135m --data <sft dataset dir> \
        --top-layers 15 --no-dpo --threads 2       # a run's own SFT rows, the cpu preset's LoRA
    .venv/bin/python benchmarks/bench_training.py --model smollm2-135m --top-layers 15 --no-sft \
        --steps 6 --threads 2                      # DPO alone

Throughput: the same rows, the same settings (LoRA r=16 on every linear layer, batch size,
sequence cap, checkpoints every `--save-steps`), trained `--steps` optimizer steps by
`agentrt.training.sft.train_sft` / `agentrt.training.dpo.train_dpo` and by `trl.SFTTrainer` / `trl.DPOTrainer`
set up by hand; tokens/s is the trainer's own token count over the time spent in `train()`.
After one unmeasured warm-up run, wrapper and TRL alternate which goes first in each of
`--repeat` rounds and the best of each counts, because the machine is shared. Stage shares: wall seconds per stage of a finished `training/iterate.py` run,
from its manifest. Figures go to benchmarks/README.md; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def _rows(n: int) -> list[dict]:
    from agentrt.data_synth.generators import generate

    rows = []
    for p in generate("arithmetic", n, seed=11, difficulty=2):
        rows.append({"messages": [
            {"role": "system", "content": "You are a python programmer. You write python tool "
                                          "calls as JSON."},
            {"role": "user", "content": f"Expert: compute, tool: python\nProblem: {p.text}\n"
                                        "Task: Compute the answer; print only it.\nWrite a "
                                        "complete Python program that prints its result."},
            {"role": "assistant", "content": json.dumps({"code": p.meta["program"]})}]})
    return rows


def _pairs(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        good = r["messages"][-1]["content"]
        out.append({"prompt": r["messages"][:-1], "chosen": [{"role": "assistant", "content": good}],
                    "rejected": [{"role": "assistant", "content": good.replace("print(", "print(1 + ")}]})
    return out


def _trl_sft(model_path: str, rows: list[dict], out: Path, settings) -> float:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTTrainer

    data = Dataset.from_list([{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]}
                              for r in rows])
    tok = AutoTokenizer.from_pretrained(model_path)
    net = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    args = settings.to_trl(out, use_cuda=torch.cuda.is_available())
    trainer = SFTTrainer(model=net, args=args, train_dataset=data, processing_class=tok,
                         peft_config=settings.lora.peft_config(net.config.num_hidden_layers))
    t0 = time.perf_counter()
    trainer.train()
    return trainer._total_train_tokens / (time.perf_counter() - t0)


def _trl_dpo(model_path: str, pairs: list[dict], out: Path, settings) -> float:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer

    tok = AutoTokenizer.from_pretrained(model_path)
    net = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    trainer = DPOTrainer(model=net, args=settings.to_trl(out, use_cuda=torch.cuda.is_available()),
                         train_dataset=Dataset.from_list(pairs), processing_class=tok,
                         peft_config=settings.lora.peft_config(net.config.num_hidden_layers))
    t0 = time.perf_counter()
    trainer.train()
    return trainer._total_train_tokens / (time.perf_counter() - t0)


def _saved_rows(args: argparse.Namespace) -> list[dict]:
    """The first rows of a saved SFT dataset (shuffled with a fixed seed: a run's own mix)."""
    from agentrt.training.sft import load_chat_dataset

    data = load_chat_dataset(args.data).shuffle(seed=0)
    n = min(len(data), args.steps * args.batch * 2)
    return [{"messages": m} for m in data.select(range(n))["messages"]]


def _rate(result) -> float:
    return result.train_tokens / result.wall_s


def throughput(args: argparse.Namespace) -> None:
    from agentrt.llm.models import resolve_model
    from agentrt.core.threads import configure as configure_threads
    from agentrt.training.common import LoraSettings
    from agentrt.training.dpo import train_dpo
    from agentrt.training.dpo_config import DPOSettings
    from agentrt.training.sft import train_sft
    from agentrt.training.sft_config import SFTSettings

    configure_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-training-"))
    if args.model == "tiny":
        from agentrt.llm.tiny import build_tiny_llama

        model = str(build_tiny_llama(tmp / "tiny", home=args.home))
    else:
        model = resolve_model(args.model, args.home)
    rows = _rows(args.steps * args.batch * 2) if args.data is None else _saved_rows(args)
    lora = LoraSettings(top_layers=args.top_layers)
    common = dict(max_steps=args.steps, batch_size=args.batch, save_steps=args.save_steps,
                  logging_steps=args.steps, lora=lora)
    sft, dpo = SFTSettings(**common, max_length=512), DPOSettings(**common, max_length=512)
    runs = {} if args.no_sft else {
        "sft-wrapper": lambda out: _rate(train_sft(model, rows, out, sft)),
        "sft-trl": lambda out: _trl_sft(model, rows, out, sft),
    }
    if not args.no_dpo:
        runs["dpo-wrapper"] = lambda out: _rate(train_dpo(model, _pairs(rows), out, dpo))
        runs["dpo-trl"] = lambda out: _trl_dpo(model, _pairs(rows), out, dpo)
    train_sft(model, rows[: args.batch * 2], tmp / "warm-up",  # first-use costs, not measured
              SFTSettings(max_steps=2, batch_size=args.batch, save_steps=2))
    best = dict.fromkeys(runs, 0.0)
    for i in range(args.repeat):
        order = list(runs) if i % 2 == 0 else [k for pair in zip(list(runs)[1::2],
                                                                  list(runs)[0::2]) for k in pair]
        for name in order:  # wrapper and TRL alternate who goes first
            best[name] = max(best[name], runs[name](tmp / f"{name}-{i}"))
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"model {args.model}, {args.steps} steps x batch {args.batch}, best of {args.repeat}")
    for kind in ("sft", "dpo"):
        w, t = best.get(f"{kind}-wrapper", 0.0), best.get(f"{kind}-trl", 0.0)
        if t:
            print(f"{kind}: wrapper {w:,.0f} tokens/s, TRL directly {t:,.0f} tokens/s, "
                  f"ratio {100 * w / t:.1f}%")


def shares(run: Path) -> None:
    manifest = json.loads((run / "manifest.json").read_text())
    stages = {k: v["wall_s"] for k, v in manifest["stages"].items()}
    total = sum(stages.values()) or 1.0
    print(f"run {run} ({manifest['config'].get('preset')}), {total / 60:.1f} min in stages")
    print("| stage | seconds | share |\n|---|---:|---:|")
    for key, wall in stages.items():
        print(f"| {key} | {wall:.0f} | {100 * wall / total:.1f}% |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="tiny, smollm2-135m, or a model directory")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--save-steps", type=int, default=10)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--home", default=None)
    p.add_argument("--no-dpo", action="store_true")
    p.add_argument("--no-sft", action="store_true")
    p.add_argument("--data", default=None,
                   help="a saved SFT dataset directory instead of generated tool-call rows")
    p.add_argument("--top-layers", type=int, default=None,
                   help="LoRA on this many top layers only (the cpu presets: 15)")
    p.add_argument("--run", type=Path, default=None, help="a finished run: print stage shares")
    args = p.parse_args()
    if args.run is not None:
        shares(args.run)
    else:
        throughput(args)


if __name__ == "__main__":
    main()
