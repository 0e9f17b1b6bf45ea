"""Fit the vote verifier (`agentrt.workflows.slow.verifier`) on the model's own graded votes.

Every solve made with `tool_votes` > 1 records a `tool_vote` decision: each run's answer and how
much of the problem's numbers its program used. Graded against the problem's reference, each
run is a labelled example (did it print the right answer?) of the features the verifier reads.
An L2-regularised logistic regression on them gives the weights that `vote_rule = "verifier"`
uses. Fit on train problems only (never a test set), then score any other evaluation run:

    python -m agentrt.training.verifier fit runs/votes-train --out verifier.json
    python -m agentrt.training.verifier score runs/votes-test --weights verifier.json

Each folder is an `agentrt eval` / `benchmarks/eval_embedded.py` `--out` folder (its
`runs/*/results.jsonl` and the trace store the runs wrote to; `--database-url` if it is not
`traces.db` there), or one run directory inside one (`<out>/runs/<run>`). `score` prints, over
the folder's problems, how many each rule picks right (majority, coverage, verifier) against
the oracle (any run right); a problem's final answer is right under a rule when that rule's
pick is, plus `right_without_vote`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentrt.core.config import VERIFIER_FEATURES
from agentrt.core.types import Problem
from agentrt.eval.graders import grade
from agentrt.store import TraceStore
from agentrt.workflows.slow.experts import numbers_in, pick_vote
from agentrt.workflows.slow.verifier import vote_features

__all__ = ["Vote", "Graded", "votes_of_runs", "fit_weights", "picks", "main"]


@dataclass
class Vote:
    """One recorded vote of a graded problem: each run's answer, features and correctness."""

    problem_id: str
    answers: list[str | None]
    coverage: list[int]
    features: list[dict[str, float] | None]
    right: list[bool]


def _vote_of(trace: Any, reference: str, grader: str) -> Vote | None:
    """The trace's last tool vote (the one its final answer came from), graded; None if none."""
    votes = [s for s in trace.steps if s.kind == "decision" and s.name == "tool_vote"]
    if not votes or not votes[-1].outputs.get("answers"):
        return None
    out = votes[-1].outputs
    answers, covered = list(out["answers"]), list(out.get("coverage") or [])
    if len(covered) != len(answers):
        covered = [0] * len(answers)
    problem = Problem(id=trace.id, text=trace.problem, answer=reference, grader=grader)
    right = [a is not None and grade(a, problem).correct for a in answers]
    return Vote(trace.id, answers, covered,
                vote_features(numbers_in(trace.problem), answers, covered), right)


@dataclass
class Graded:
    """The votes of some evaluation runs, and the problems solved without one."""

    votes: list[Vote]
    problems: int = 0  # every graded problem, with a vote or not
    right_without_vote: int = 0  # answered right by a solve that voted on nothing


def votes_of_runs(folders: Iterable[Path], database_url: str | None = None) -> Graded:
    """The graded votes of every result in the evaluation folders (problems without a vote,
    e.g. answered by fast thinking or with no successful run, are only counted)."""
    graded = Graded([])
    for folder in folders:
        one_run = (folder / "results.jsonl").is_file()  # a run directory inside an --out folder
        db = (folder.parent.parent if one_run else folder) / "traces.db"
        store = TraceStore(database_url or f"sqlite:///{db.resolve()}")
        try:
            for results in ([folder / "results.jsonl"] if one_run
                            else sorted(folder.glob("runs/*/results.jsonl"))):
                for line in results.read_text(encoding="utf-8").splitlines():
                    r = json.loads(line)
                    graded.problems += 1
                    vote = None
                    if r.get("trace_id"):
                        vote = _vote_of(store.get_trace(r["trace_id"]), r["reference"],
                                        r["grader"])
                    if vote is not None:
                        graded.votes.append(vote)
                    else:
                        graded.right_without_vote += bool(r.get("correct"))
        finally:
            store.close()
    return graded


def _matrix(votes: list[Vote]) -> tuple[np.ndarray, np.ndarray]:
    rows, labels = [], []
    for v in votes:
        for f, ok in zip(v.features, v.right):
            if f is not None:
                rows.append([f[k] for k in VERIFIER_FEATURES])
                labels.append(float(ok))
    return np.array(rows, dtype=np.float64).reshape(-1, len(VERIFIER_FEATURES)), \
        np.array(labels, dtype=np.float64)


def fit_weights(votes: list[Vote], l2: float = 1.0, steps: int = 50) -> dict[str, float]:
    """Logistic-regression weights (with `bias`) by Newton's method, the bias unpenalised.

    Raises:
        ValueError: no run, or the runs are all right or all wrong (nothing to tell apart).
    """
    x, y = _matrix(votes)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("the votes need both right and wrong runs to fit a verifier")
    x = np.hstack([x, np.ones((len(y), 1))])
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(x @ w, -60, 60)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    out = {k: round(float(v), 4) for k, v in zip(VERIFIER_FEATURES, w[:-1])}
    return {**out, "bias": round(float(w[-1]), 4)}


def picks(votes: list[Vote], weights: dict[str, float] | None) -> dict[str, int]:
    """How many votes each rule picks right, how many the greedy call (the first run) got
    right, and how many have any right run (the oracle)."""
    rules = ["majority", "coverage"] + (["verifier"] if weights else [])
    out = {"votes": len(votes), "any_run_right": sum(any(v.right) for v in votes),
           "greedy": sum(v.right[0] for v in votes)}
    for rule in rules:
        out[rule] = sum(v.right[pick_vote(v.answers, v.coverage, rule, v.features, weights)]
                        for v in votes)
    return out


def cross_validated(votes: list[Vote], folds: int = 5, l2: float = 1.0) -> int:
    """Votes the verifier picks right when each fold is scored by weights fitted on the rest."""
    right = 0
    for k in range(folds):
        held = votes[k::folds]
        rest = [v for i, v in enumerate(votes) if i % folds != k]
        right += picks(held, fit_weights(rest, l2))["verifier"]
    return right


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help="fit weights on train problems' votes")
    fit.add_argument("folders", nargs="+", type=Path)
    fit.add_argument("--out", type=Path, required=True, help="JSON file for the weights")
    fit.add_argument("--l2", type=float, default=1.0)
    score = sub.add_parser("score", help="what each vote rule picks right in other runs")
    score.add_argument("folders", nargs="+", type=Path)
    score.add_argument("--weights", type=Path, default=None)
    for s in (fit, score):
        s.add_argument("--database-url", default=None)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    graded = votes_of_runs(args.folders, args.database_url)
    votes = graded.votes
    if args.command == "fit":
        weights = fit_weights(votes, args.l2)
        args.out.write_text(json.dumps(weights, indent=2) + "\n", encoding="utf-8")
        summary = {**picks(votes, weights), "verifier_cross_validated": cross_validated(
            votes, l2=args.l2), "weights": str(args.out)}
    else:
        weights = json.loads(args.weights.read_text()) if args.weights else None
        summary = picks(votes, weights)
    summary.update(problems=graded.problems, right_without_vote=graded.right_without_vote)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
