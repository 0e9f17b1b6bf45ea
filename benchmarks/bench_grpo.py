"""GRPO against DPO and HyPO from the same model, the same traces and the same step budget.

    .venv/bin/python benchmarks/bench_grpo.py --model runs/cpu/models/it1-sft \\
        --db sqlite:///runs/cpu/agentrt.db --tags iterate_run=cpu,split=train --steps 20
    .venv/bin/python benchmarks/bench_grpo.py --tiny        # a self-contained check, minutes

From the traces carrying `--tags` it builds the GRPO prompts (`agentrt.training.grpo_data`) and the
preference pairs (`agentrt.training.data.build_dpo_dataset`), splits the problems into train and held-out
by a hash of their id (`--eval-frac`), and trains each method for `--steps` optimizer steps,
stopping early at `--budget-s` seconds of training when given (so the methods can be compared
at equal steps or at equal wall time). Each trained model, and the starting one, then answers the
held-out problems' runtime calls (python tool calls and fast answers, greedy, the runtime's own
prompts) and is scored with GRPO's reward (`agentrt.training.grpo_rewards`): the share right, the share
well formed, the mean completion length. This measures the calls, not whole solves; the
iterate loop's evaluation measures solves. `--tiny` makes a tiny random Llama, gold traces and
wrong fast answers in a temporary directory and runs everything for one step, to check the
script works (its figures mean nothing). Results are printed and written to `--out`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any


def _held_out(problem_id: str, frac: float) -> bool:
    digest = hashlib.sha256(problem_id.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < frac


def _budget(seconds: float | None) -> list[Any]:
    """A callback ending training once `seconds` of it have passed (none without a budget)."""
    if not seconds:
        return []
    from transformers import TrainerCallback

    class Budget(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if time.perf_counter() - self.t0 >= seconds:
                control.should_training_stop = True
            return control

    return [Budget()]


def _generate(model_path: str, rows: list[dict], max_tokens: int) -> tuple[list[str], list[int]]:
    """Greedy replies to each row's prompt (chat template as the hf backend applies it)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    tok.pad_token = tok.pad_token or tok.eos_token
    tok.padding_side = "left"
    net = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32).eval()
    texts, lengths = [], []
    for i in range(0, len(rows), 8):
        batch = rows[i:i + 8]
        prompts = [tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
                   for r in batch]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        limit = min(max_tokens, max(r["max_tokens"] or max_tokens for r in batch))
        with torch.no_grad():
            out = net.generate(**enc, do_sample=False, max_new_tokens=limit,
                               pad_token_id=tok.pad_token_id)
        for seq in out[:, enc["input_ids"].shape[1]:]:
            ids = seq.tolist()
            if tok.eos_token_id in ids:
                ids = ids[:ids.index(tok.eos_token_id)]
            texts.append(tok.decode(ids, skip_special_tokens=True))
            lengths.append(len(ids))
    return texts, lengths


def _score(model_path: str, rows: list[dict], max_tokens: int) -> dict[str, Any]:
    from agentrt.core.types import Problem
    from agentrt.training.grpo_rewards import RuntimeReward

    if not rows:
        return {}
    texts, lengths = _generate(model_path, rows, max_tokens)
    problems = [Problem(id=r["problem_id"] or "p", text=r["problem"] or "?", answer=r["reference"],
                        grader=r["grader"]) for r in rows]
    scores = RuntimeReward().scores(texts, [r["step"] for r in rows], problems,
                                    [r["json_schema"] for r in rows])
    out: dict[str, Any] = {"calls": len(rows), "mean_tokens": sum(lengths) / len(rows)}
    for step in sorted({r["step"] for r in rows}):
        mine = [s for s, r in zip(scores, rows) if r["step"] == step]
        out[f"{step}/right"] = sum(s.correct for s in mine) / len(mine)
        out[f"{step}/well_formed"] = sum(s.well_formed for s in mine) / len(mine)
    return out


def _datasets(args: argparse.Namespace, store: Any, work: Path) -> tuple[Any, Any, list[dict]]:
    from datasets import load_from_disk

    from agentrt.training.data import build_dpo_dataset
    from agentrt.training.grpo_data import build_grpo_dataset

    tags = dict(kv.split("=", 1) for kv in args.tags.split(",") if kv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    grpo = build_grpo_dataset(store, tags=tags, out=work / "grpo", name=f"bench-grpo-{stamp}",
                              tokenizer=args.model, max_prompt_tokens=args.max_prompt_tokens)
    dpo = build_dpo_dataset(store, tags=tags, out=work / "dpo", name=f"bench-dpo-{stamp}",
                            tokenizer=args.model, max_tokens=args.max_length)
    if grpo is None or dpo is None:
        raise SystemExit(f"no {'GRPO prompts' if grpo is None else 'preference pairs'} "
                         f"in traces tagged {tags}")
    g, d = load_from_disk(grpo.path), load_from_disk(dpo.path)
    held = [r for r in g if _held_out(r["problem_id"], args.eval_frac)]
    g = g.filter(lambda r: not _held_out(r["problem_id"], args.eval_frac))
    d = d.filter(lambda r: not _held_out(r["problem_id"] or "", args.eval_frac))
    return g, d, held[:args.eval_calls]


def _train(method: str, args: argparse.Namespace, grpo: Any, dpo: Any, out: Path) -> dict:
    from agentrt.training.common import LoraSettings
    from agentrt.training.dpo import train_dpo
    from agentrt.training.dpo_config import DPOSettings
    from agentrt.training.grpo import train_grpo
    from agentrt.training.grpo_config import GRPOSettings
    from agentrt.training.hypo import train_hypo

    lora = LoraSettings(r=16, alpha=32, top_layers=args.top_layers)
    common = dict(max_steps=args.steps, batch_size=args.batch, lora=lora, save_steps=10_000,
                  logging_steps=1)
    cb = _budget(args.budget_s)
    if method == "grpo":
        s = GRPOSettings(**common, num_generations=args.generations,
                         max_completion_tokens=args.max_tokens)
        r = train_grpo(args.model, grpo, out, s, callbacks=cb)
    else:
        s = DPOSettings(**common, max_length=args.max_length, kl_max_tokens=args.max_tokens)
        r = (train_hypo if method == "hypo" else train_dpo)(args.model, dpo, out, s, callbacks=cb)
    return {"steps": r.steps, "wall_s": round(r.wall_s, 1),
            "s_per_step": round(r.wall_s / max(r.steps, 1), 2),
            "rows": len(grpo) if method == "grpo" else len(dpo), "path": r.path}


def _tiny_setup(work: Path, home: str | None) -> tuple[str, str, str]:
    """A tiny random Llama and a store of gold traces plus wrong fast answers of the same
    problems (for preference pairs). Returns (model dir, store URL, tags)."""
    from agentrt.core.config import load_settings
    from agentrt.llm.fake import FakeBackend
    from agentrt.llm.models import pull_model
    from agentrt.llm.tiny import build_tiny_llama
    from agentrt.runtime import Runtime
    from agentrt.data_synth.generators import generate
    from agentrt.data_synth.teacher import gold_traces
    from agentrt.data_synth.verify import problem_tags

    vocab = pull_model("smollm2-135m", home=home, progress=False)
    model = build_tiny_llama(work / "tiny", vocab_from=vocab)
    url = f"sqlite:///{work / 'traces.db'}"
    settings = load_settings(backend="hf", model="smollm2-135m", database_url=url, home=work)
    problems = generate("arithmetic", 8, seed=5, difficulty=1)
    script = [r for _ in problems for r in ("Final answer: 1", "Looks fine.\nVerdict: yes")]
    rt = Runtime(settings, backend=FakeBackend(script=script, model_id="smollm2-135m"))
    ids = gold_traces(problems, store=rt.store, settings=settings, mode="both").trace_ids
    ids += [rt.solve(p.text, mode="fast", tags=problem_tags(p)).trace_id for p in problems]
    for t in ids:
        rt.store.tag(t, bench="tiny")
    rt.close()
    return str(model), url, "bench=tiny"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="the trained model directory every method starts from")
    ap.add_argument("--db", help="the trace store's URL")
    ap.add_argument("--tags", default="", help="traces to use: k=v,k=v")
    ap.add_argument("--methods", default="grpo,dpo,hypo")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per method")
    ap.add_argument("--budget-s", type=float, default=None, help="also stop after this long")
    ap.add_argument("--batch", type=int, default=4, help="prompts (GRPO) or pairs per step")
    ap.add_argument("--generations", type=int, default=4, help="GRPO samples per prompt")
    ap.add_argument("--max-tokens", type=int, default=128, help="sampled / generated tokens")
    ap.add_argument("--max-length", type=int, default=512, help="DPO sequence cap")
    ap.add_argument("--max-prompt-tokens", type=int, default=512)
    ap.add_argument("--top-layers", type=int, default=None, help="LoRA on the top layers only")
    ap.add_argument("--eval-frac", type=float, default=0.2, help="share of problems held out")
    ap.add_argument("--eval-calls", type=int, default=64, help="held-out calls scored")
    ap.add_argument("--out", default=None, help="results directory (default: a temporary one)")
    ap.add_argument("--tiny", action="store_true", help="self-contained check on a tiny model")
    ap.add_argument("--home", default=None, help="agentrt home holding the embedded model")
    args = ap.parse_args()

    from agentrt.store import TraceStore

    work = Path(args.out or tempfile.mkdtemp(prefix="bench-grpo-"))
    work.mkdir(parents=True, exist_ok=True)
    if args.tiny:
        args.model, args.db, args.tags = _tiny_setup(work, args.home)
        args.steps, args.batch, args.generations, args.max_tokens = 1, 2, 2, 8
        args.eval_frac, args.eval_calls = 0.3, 8
    if not (args.model and args.db):
        ap.error("give --model and --db (or --tiny)")
    store = TraceStore(args.db)
    grpo, dpo, held = _datasets(args, store, work)
    store.close()
    print(f"train: {len(grpo)} GRPO prompts, {len(dpo)} preference pairs; "
          f"held out: {len(held)} calls")
    results = {"start": {"eval": _score(args.model, held, args.max_tokens)}}
    for method in [m for m in args.methods.split(",") if m]:
        trained = _train(method, args, grpo, dpo, work / f"model-{method}")
        trained["eval"] = _score(trained["path"], held, args.max_tokens)
        results[method] = trained
        print(method, json.dumps(trained))
    (work / "results.json").write_text(json.dumps(results, indent=2))
    keys = sorted({k for r in results.values() for k in r.get("eval", {})})
    print("\n| model | steps | s/step | " + " | ".join(keys) + " |")
    print("| --- " * (len(keys) + 3) + "|")
    for name, r in results.items():
        cells = [f"{r['eval'].get(k, 0):.3g}" for k in keys]
        print(f"| {name} | {r.get('steps', '-')} | {r.get('s_per_step', '-')} | "
              + " | ".join(cells) + " |")
    print(f"\nresults: {work / 'results.json'}")


if __name__ == "__main__":
    main()
