"""Benchmarks x modes on the embedded model: accuracy, tokens and time, in one command.

    python benchmarks/eval_embedded.py                       # 50 problems x {game24, gsm8k,
                                                             # math500} x {fast, slow, auto}
    python benchmarks/eval_embedded.py --limit 5 --modes fast --benches gsm8k   # a quick look
    python benchmarks/eval_embedded.py --model smollm2-135m-agentrt --shipped-settings \
        --benches gsm8k --limit 200 --modes auto           # the shipped trained default

Every run is a real `agentrt eval` run (the same harness, graders and trace tagging as the CLI)
on SmolLM2-135M-Instruct (or `--model`) through the hf backend, sharing one loaded model and one
trace store. Budgets are fixed by the flags below so that the figures are reproducible; `auto`
uses the default `escalate` router (with --shipped-settings, the limits and router the model
ships with). At the end it writes one report over all runs (Markdown + plots) and prints the
figures table that benchmarks/README.md holds. Run directories, the trace store and
the report go under --out (default `runs/eval_embedded`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agentrt.core.config import Limits, load_settings
from agentrt.data_synth import infox  # noqa: F401 - registers the infox benchmarks
from agentrt.eval.harness import EvalSpec, run_eval
from agentrt.eval.metrics import compute_metrics
from agentrt.eval.report import write_report
from agentrt.llm.base import load_backend
from agentrt.runtime import Runtime
from agentrt.store import TraceStore


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--benches", default="game24,gsm8k,math500")
    p.add_argument("--modes", default="fast,slow,auto")
    p.add_argument("--workers", type=int, default=8, help="concurrent solves")
    p.add_argument("--batch", type=int, default=8, help="hf micro-batch size")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", default="auto",
                   help="torch CPU threads: a number, or auto (every core while the machine is "
                        "otherwise idle, one while it is busy)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="max tokens per LLM call (default 160; given, it wins over the shipped "
                        "settings)")
    p.add_argument("--max-llm-calls", type=int, default=14)
    p.add_argument("--max-total-tokens", type=int, default=12000)
    p.add_argument("--max-rounds", type=int, default=1)
    p.add_argument("--max-nodes", type=int, default=4)
    p.add_argument("--max-wall-s", type=float, default=7200.0,
                   help="per-solve wall budget (queueing behind other solves counts)")
    p.add_argument("--sequential", action="store_true",
                   help="run bench x mode pairs one after another instead of all at once")
    p.add_argument("--data", default=None, help="benchmark data folder")
    p.add_argument("--out", default="runs/eval_embedded")
    p.add_argument("--home", default=None, help="agentrt home (model cache); default as usual")
    p.add_argument("--model", default="smollm2-135m",
                   help="embedded model name or model directory (smollm2-135m-agentrt: the "
                        "shipped trained model)")
    p.add_argument("--jobs", default=None,
                   help="bench:mode:limit triples, comma separated (e.g. gsm8k:auto:200,"
                        "math500:auto:100); replaces --benches, --modes and --limit")
    p.add_argument("--router", default=None,
                   help="router (wins over the shipped settings; default escalate)")
    p.add_argument("--prompt-profile", default="auto",
                   help="auto (the model's own), compact, compact-numbers or full")
    p.add_argument("--shipped-settings", action="store_true",
                   help="use the limits and router the model ships with instead of the flags "
                        "above and the escalate router")
    p.add_argument("--dtype", default="auto", help="weights: auto, fp32, bf16, int8 or int4 (CPU)")
    p.add_argument("--forward-steps", action="store_true",
                   help="decode steps through transformers' forward, not the lean step")
    p.add_argument("--tool-votes", type=int, default=None,
                   help="calls written and run per tool expert, majority-voted (wins over the "
                        "shipped settings)")
    p.add_argument("--vote-rule", choices=["majority", "coverage", "verifier"], default=None,
                   help="how tool votes pick (wins over the shipped settings)")
    p.add_argument("--vote-weights", default=None,
                   help="JSON file of the verifier rule's weights (agentrt.training.verifier)")
    p.add_argument("--team-pattern", choices=["debate", "discuss", "pool"], default="debate",
                   help="the pattern of team-mode jobs (infox:team:40)")
    p.add_argument("--max-repairs", type=int, default=None,
                   help="repairs of a failed tool call or design (wins over the shipped settings)")
    return p.parse_args()


def machine(backend) -> str:
    import torch

    dev = str(getattr(backend, "device", "?"))
    gpu = torch.cuda.get_device_name(0) if dev.startswith("cuda") else ""
    return (f"{platform.machine()} {os.cpu_count()} CPUs, {dev} {gpu}".strip()
            + f", torch {torch.__version__}, python {platform.python_version()}")


def row(run, met) -> str:
    o, m = met.overall, run.manifest
    n = max(o.n, 1)
    r = met.router
    pct = lambda v: "–" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    router = f"{pct(r.precision)} / {pct(r.recall)}" if r else "–"
    return (f"| {m.spec.bench} | {m.spec.mode} | {o.n} | {100 * o.accuracy:.1f}% "
            f"({100 * o.ci_low:.1f}–{100 * o.ci_high:.1f}) | {o.prompt_tokens / n:.0f} | "
            f"{o.completion_tokens / n:.0f} | {o.llm_calls_per_problem:.1f} | "
            f"{o.tool_runs_per_problem:.2f} | {o.latency_s_mean:.1f} | {m.wall_s or 0:.0f} | "
            f"{pct(o.slow_fraction)} | {router} | {o.errors} |")


def main() -> int:
    args = parse()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from agentrt.core.threads import configure

    configure(int(args.threads) if args.threads.isdigit() else args.threads)
    limits = Limits(max_tokens_per_call=args.max_tokens or 160, max_llm_calls=args.max_llm_calls,
                    max_total_tokens=args.max_total_tokens, max_rounds=args.max_rounds,
                    max_nodes=args.max_nodes, max_wall_s=args.max_wall_s)
    router = "escalate"
    if args.shipped_settings:
        from agentrt.llm.adapters import shipped_settings

        shipped = shipped_settings(args.model)
        limits = limits.model_copy(update={**shipped.get("limits", {}),
                                           "max_wall_s": args.max_wall_s})
        router = shipped.get("router", router)
    router = args.router or router
    overrides = {"tool_votes": args.tool_votes, "max_repairs": args.max_repairs,
                 "max_tokens_per_call": args.max_tokens,
                 "vote_rule": args.vote_rule,
                 "vote_weights": json.loads(Path(args.vote_weights).read_text())
                 if args.vote_weights else None}
    limits = Limits(**{**limits.model_dump(),
                       **{k: v for k, v in overrides.items() if v is not None}})
    settings = load_settings(backend="hf", model=args.model, device=args.device,
                             home=args.home, limits=limits, router=router,
                             team_pattern=args.team_pattern, prompt_profile=args.prompt_profile,
                             database_url=f"sqlite:///{(out / 'traces.db').resolve()}")
    backend = load_backend("hf", args.model, device=args.device, home=settings.home,
                           max_batch_size=args.batch, dtype=args.dtype,
                           lean_decode=not args.forward_steps)
    store = TraceStore(settings.db_url)
    rt = Runtime(settings, backend=backend, store=store)
    print(f"machine: {machine(backend)}; limits: {limits.model_dump()}", flush=True)
    runs = []
    started = time.perf_counter()
    jobs = [(mode, bench, args.limit) for mode in args.modes.split(",")
            for bench in args.benches.split(",")]
    if args.jobs:
        # bench names may hold colons (gsm8k:train, jsonl:<path>): mode and limit are the last two
        triples = [j.rsplit(":", 2) for j in args.jobs.split(",") if j.strip()]
        if any(len(t) != 3 or not t[2].isdigit() for t in triples):
            raise SystemExit("--jobs takes bench:mode:limit triples, e.g. gsm8k:auto:200")
        jobs = [(mode, bench, int(limit)) for bench, mode, limit in triples]

    def one(job: tuple[str, str, int]):
        mode, bench, limit = job
        spec = EvalSpec(bench=bench, data=args.data, limit=limit, mode=mode,
                        workers=args.workers)
        done = [0]

        def tick(r) -> None:
            done[0] += 1
            if done[0] % 10 == 0:
                print(f"  {bench} {mode}: {done[0]} done", flush=True)

        run = run_eval(rt, spec, out=out / "runs", on_result=tick)
        met = compute_metrics(run.results, run.manifest.wall_s)
        print(f"{bench} {mode}: {met.overall.correct}/{met.overall.n} right, "
              f"{met.overall.tokens_per_problem:.0f} tokens/problem, "
              f"{run.manifest.wall_s:.0f} s", flush=True)
        return run

    # --sequential: one bench x mode after another (per-run wall times without contention);
    # default: all at once, so their solves share the backend's batches.
    with ThreadPoolExecutor(max_workers=1 if args.sequential else len(jobs)) as pool:
        runs = list(pool.map(one, jobs))
    report = write_report(runs, out / "report")
    header = ("| bench | mode | n | accuracy (95% CI) | prompt tok/problem | completion "
              "tok/problem | LLM calls/problem | tool runs/problem | s/problem (latency) | "
              "wall s | slow share | router precision / recall | errors |\n"
              "|" + " --- |" * 13)
    table = "\n".join([header] + [row(r, compute_metrics(r.results, r.manifest.wall_s))
                                  for r in runs])
    (out / "figures.md").write_text(f"machine: {machine(backend)}\n\n{table}\n")
    print(f"\n{table}\n\nall runs: {time.perf_counter() - started:.0f} s; report: {report}")
    rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
