"""Throughput of the problem generators, the graders on their answers, and decontamination.

    python benchmarks/bench_generators.py [--n 200] [--seed 0] [--repeat 5] [--data ../shared/data]

Prints, per family and difficulty, problems generated per second (generation includes the
distinctness check) and answers graded per second, each the fastest of `--repeat` runs because
the machine is shared; then the time to build the test-set index
and the rate of decontamination and near-duplicate removal over all generated problems.
Figures go to benchmarks/README.md by hand; nothing is asserted.
"""

from __future__ import annotations

import argparse
import time

from agentrt.eval.graders import grade
from agentrt.data_synth.decontaminate import build_index, decontaminate, dedupe
from agentrt.data_synth.generators import FAMILIES, generate
from agentrt.data_synth.generators.game24_solver import count_solutions


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "inf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="problems per family and difficulty")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=None,
                        help="benchmark data folder (default $AGENTRT_DATA or ../shared/data)")
    parser.add_argument("--families", nargs="*", default=list(FAMILIES))
    parser.add_argument("--repeat", type=int, default=5, help="runs per measurement; the fastest is shown")
    args = parser.parse_args()

    everything = []
    print(f"{'family':<11} {'level':>5} {'problems/s':>11} {'graded/s':>9}   (best of {args.repeat})")
    for family in args.families:
        for level in (1, 2, 3, None):
            n = args.n
            gen_s, grade_s = [], []
            for _ in range(args.repeat):
                count_solutions.cache_clear()  # no Game of 24 counts carried over between runs
                t0 = time.perf_counter()
                problems = generate(family, n, seed=args.seed, difficulty=level)
                t1 = time.perf_counter()
                ok = sum(grade(p.answer, p).correct for p in problems)
                t2 = time.perf_counter()
                gen_s.append(t1 - t0)
                grade_s.append(t2 - t1)
            if ok != len(problems):
                raise SystemExit(f"{family} level {level}: {len(problems) - ok} answers failed their grader")
            everything.extend(problems if level is None else [])
            print(f"{family:<11} {level or 'mix':>5} {_rate(n, min(gen_s)):>11} {_rate(n, min(grade_s)):>9}")

    t0 = time.perf_counter()
    index = build_index(args.data)
    t1 = time.perf_counter()
    kept, removed, report = decontaminate(everything, index)
    t2 = time.perf_counter()
    kept2, removed2, dreport = dedupe(everything)
    t3 = time.perf_counter()
    print(f"\nindex build: {t1 - t0:.2f} s ({', '.join(f'{k} {v}' for k, v in index.items.items())})")
    print(f"decontaminate: {_rate(len(everything), t2 - t1)} problems/s, removed {report.removed} of "
          f"{report.checked} at threshold {report.threshold} (n={report.n}) {report.removed_by_source}")
    print(f"dedupe: {_rate(len(everything), t3 - t2)} problems/s, removed {dreport.removed} of {dreport.checked} "
          f"(Jaccard >= {dreport.threshold} on {dreport.n}-grams; {dreport.exact_duplicates} exact)")


if __name__ == "__main__":
    main()
