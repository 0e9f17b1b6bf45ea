"""Learned router on synthetic graded problems: how well it ranks, what routing buys, how fast.

    python benchmarks/bench_router.py            # --train 200,1000,4000 --test 2000 --seed 0

Problems come from the programmatic generators (every family, difficulty 1-3). Whether "fast
fails" on a problem is drawn from a known rule (more likely for harder levels and for families
such as game24 and counting), and slow thinking is taken to solve 80% of what it gets. The
router sees only the problem text. For each training size it prints the out-of-fold AUC and
accuracy (against the best constant guess), the time to train (5-fold scoring plus the final
fit) and to score one problem, and, on held-out problems at a 30% slow share, the share solved
and mean tokens of: always fast, random routing, the learned router, an oracle, always slow.
The figures describe the method on a known rule, not any model's real failures.
"""

from __future__ import annotations

import argparse
import random
import time

import numpy as np

from agentrt.router import RouterExample, TrainConfig, fit_router
from agentrt.data_synth.generators import FAMILIES, generate

FAMILY_RISK = {"arithmetic": 0.0, "word": 0.05, "units": 0.05, "sequences": 0.1, "logic": 0.1,
               "linear": 0.15, "quadratic": 0.2, "counting": 0.25, "game24": 0.4}
FAST_TOKENS, SLOW_TOKENS, SLOW_SUCCESS, SLOW_SHARE = 400, 2500, 0.8, 0.3


def problems(n: int, seed: int) -> list[tuple[str, bool, bool]]:
    """(text, fast fails, slow succeeds) for n generated problems."""
    rng = random.Random(seed)
    out = []
    per = max(n // (len(FAMILIES) * 3), 1)
    for k, fam in enumerate(FAMILIES):
        for level in (1, 2, 3):
            for p in generate(fam, per, seed=seed * 1000 + k * 10 + level, difficulty=level):
                risk = min(0.95, 0.1 + 0.25 * (level - 1) + FAMILY_RISK.get(fam, 0.1))
                out.append((p.text, rng.random() < risk, rng.random() < SLOW_SUCCESS))
    rng.shuffle(out)
    return out[:n]


def routed(slow: np.ndarray, fails: np.ndarray, slow_ok: np.ndarray) -> tuple[float, float]:
    solved = np.where(slow, slow_ok, ~fails).mean()
    tokens = np.where(slow, SLOW_TOKENS, FAST_TOKENS).mean()
    return float(solved), float(tokens)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", default="200,1000,4000")
    ap.add_argument("--test", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    test = problems(args.test, args.seed + 99)
    fails = np.array([f for _, f, _ in test])
    slow_ok = np.array([s for _, _, s in test])
    print(f"held-out: {len(test)} problems, fast fails on {fails.mean():.1%}")
    print("| train | fast fails | OOF AUC | OOF acc | constant acc | train s | score µs/problem |"
          " always fast | random 30% | learned 30% | oracle 30% | always slow |")
    print("|" + " --- |" * 12)
    for n in (int(x) for x in args.train.split(",")):
        train = problems(n, args.seed)
        ex = [RouterExample(text=t, fast_failed=f) for t, f, _ in train]
        t0 = time.perf_counter()
        model = fit_router(ex, TrainConfig(target_slow_fraction=SLOW_SHARE))
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        scores = np.array([model.score(t) for t, _, _ in test])
        score_us = 1e6 * (time.perf_counter() - t0) / len(test)
        k = int(SLOW_SHARE * len(test))
        learned = np.zeros(len(test), bool)
        learned[np.argsort(-scores)[:k]] = True
        oracle = np.zeros(len(test), bool)
        oracle[np.argsort(~fails, kind="stable")[:k]] = True  # failures first
        rand = np.mean([routed(np.random.default_rng(s).permutation(len(test)) < k, fails,
                               slow_ok)[0] for s in range(20)])
        m = model.metrics
        cells = [routed(np.zeros(len(test), bool), fails, slow_ok), (rand, None),
                 routed(learned, fails, slow_ok), routed(oracle, fails, slow_ok),
                 routed(np.ones(len(test), bool), fails, slow_ok)]
        fmt = [f"{a:.1%}" + (f" ({t:.0f} tok)" if t else "") for a, t in cells]
        print(f"| {n} | {m['fast_fail_rate']:.1%} | {m['oof_auc']:.3f} | {m['oof_accuracy']:.1%} | "
              f"{m['constant_accuracy']:.1%} | {train_s:.1f} | {score_us:.0f} | " + " | ".join(fmt)
              + " |", flush=True)


if __name__ == "__main__":
    main()
