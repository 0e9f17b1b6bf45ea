"""Size and composition of datasets built from a real run of the embedded model, plus gold traces.

    python benchmarks/bench_datasets.py [--n 20] [--slow 5] [--max-tokens-per-call 192]

Generates `--n` problems over five families (difficulty 1 and 2), solves all of them with the
embedded SmolLM2-135M (hf backend) in fast mode and the first `--slow` of them in slow mode,
concurrently so the backend batches, grades every answer, stores gold traces for the same
problems (slow for all, fast for difficulty 1), then builds every dataset kind from the store,
tokens measured with the model's own tokenizer. Prints solve throughput and accuracy, the
time of each step, and per dataset its rows and tokens by group (SFT: by call, i.e. role in the
workflow) and by source (gold or the model's own verified calls). Figures go to
benchmarks/README.md by hand; nothing is asserted. Everything is written under a fresh folder
(`--out`, a temporary one by default); the model cache is `--home` (default `.agentrt/bench`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agentrt.core.config import Limits, load_settings
from agentrt.runtime import Runtime
from agentrt.store import TraceStore
from agentrt.data_synth.compile import BuildSpec, build_dataset
from agentrt.data_synth.generators import generate
from agentrt.data_synth.teacher import gold_traces
from agentrt.data_synth.verify import grade_text, problem_tags

FAMILIES = ("arithmetic", "word", "units", "sequences", "logic")


def _problems(n: int, seed: int) -> list:
    per = -(-n // len(FAMILIES))
    out = []
    for i, family in enumerate(FAMILIES):
        out += generate(family, per, seed=seed + i, difficulty=1 + (i % 2))
    return out[:n]


def _solve_all(rt: Runtime, problems: list, mode: str, workers: int) -> tuple[float, int, int]:
    def one(p):
        try:
            sol = rt.solve(p.text, mode=mode, tags={**problem_tags(p), "bench": "datasets"})
        except Exception as e:  # a failed solve is counted, not fatal
            print(f"  {mode} {p.id}: {type(e).__name__}: {e}")
            return False, 0
        return grade_text(sol.answer, p), sol.usage.total_tokens

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, problems))
    return time.perf_counter() - started, sum(ok for ok, _ in results), sum(t for _, t in results)


def _table(record) -> None:
    comp = record.meta["composition"]
    print(f"\n{record.kind} ({record.name}): {record.rows} rows from "
          f"{record.meta['used_traces']} of {record.meta['selected_traces']} traces, "
          f"{comp.get('tokens', {}).get('total', 0)} tokens; sources {comp.get('sources', '-')}")
    print(f"| {comp['by']} | rows | tokens | mean tokens |")
    print("| --- | ---: | ---: | ---: |")
    for key, v in comp["groups"].items():
        mean = v["tokens"] / v["rows"] if v["rows"] else 0
        print(f"| {key} | {v['rows']} | {v['tokens']} | {mean:.0f} |")
    if comp.get("messages_per_role"):
        print(f"messages per role: {comp['messages_per_role']}")
    if record.meta.get("skipped"):
        print(f"skipped traces: {record.meta['skipped']}")


def _solve_phase(rt: Runtime, problems: list, args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    rt.backend  # load the model once, outside the timings
    print(f"model loaded in {time.perf_counter() - t0:.1f} s")
    secs, right, tokens = _solve_all(rt, problems, "fast", args.workers)
    print(f"fast: {len(problems)} solves in {secs:.0f} s ({len(problems) / secs:.2f}/s), "
          f"{right} right, {tokens} tokens", flush=True)
    if args.slow:
        secs, right, tokens = _solve_all(rt, problems[: args.slow], "slow", args.workers)
        print(f"slow: {args.slow} solves in {secs:.0f} s, {right} right, {tokens} tokens",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--slow", type=int, default=5, help="problems also solved slowly")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--max-tokens-per-call", type=int, default=192,
                        help="the solves' per-call output cap (the runtime's default is 512)")
    parser.add_argument("--home", default=".agentrt/bench")
    parser.add_argument("--out", default=None)
    parser.add_argument("--no-solve", action="store_true",
                        help="reuse the solves already stored under --out (gold and builds only)")
    args = parser.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="bench-datasets-"))
    out.mkdir(parents=True, exist_ok=True)
    settings = load_settings(backend="hf", model="smollm2-135m", home=args.home,
                             database_url=f"sqlite:///{out / 'traces.db'}",
                             limits=Limits(max_tokens_per_call=args.max_tokens_per_call))
    problems = _problems(args.n, args.seed)
    print(f"{len(problems)} problems ({', '.join(FAMILIES)}); output in {out}")
    rt = Runtime(settings)
    try:
        if not args.no_solve:
            _solve_phase(rt, problems, args)
        t0 = time.perf_counter()
        # Gold traces match a runtime with the default limits (the solves above ran capped).
        gold_settings = settings.model_copy(update={"limits": Limits()})
        report = gold_traces(problems, store=rt.store, settings=gold_settings, mode="both")
        print(f"gold: {report.stored} stored, {len(report.rejected)} rejected, "
              f"{report.skipped or 'none'} skipped in {time.perf_counter() - t0:.1f} s")
        for r in report.rejected:
            print(f"  rejected {r['problem_id']} ({r['mode']}): {r['reason'][:100]}")
        store: TraceStore = rt.store
        for kind, extra in (("sft", {}), ("sft", {"verified_only": False}), ("tool", {}),
                            ("dpo", {}), ("router", {})):
            label = kind + ("-all" if extra else "")
            t0 = time.perf_counter()
            try:
                record = build_dataset(store, BuildSpec(kind=kind, out=out / label,
                                                        tokenizer="smollm2-135m", **extra),
                                       home=settings.home)
            except Exception as e:  # e.g. no preference pair in a tiny run
                print(f"\n{label}: not built: {e}")
                continue
            print(f"\n[{label}] built in {time.perf_counter() - t0:.1f} s")
            _table(record)
    finally:
        rt.close()


if __name__ == "__main__":
    main()
