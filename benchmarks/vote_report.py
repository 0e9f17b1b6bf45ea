"""What voting over tool calls bought, read from one evaluation run's results and traces.

For each graded problem of an `agentrt eval` / `eval_embedded.py` run made with `tool_votes` >
1: the greedy call's printed answer, the voted answer (and what the `majority` and `coverage`
vote rules would each have picked, from the recorded answers and coverage), whether any sampled
run printed the reference (the oracle a perfect vote would reach) and the final graded answer.
One run, so the greedy and voted figures are paired on the same problems and the same model:

    python benchmarks/vote_report.py runs/votes5

Prints a markdown table (and `--json` the per-problem rows).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path

from agentrt.core.types import Problem
from agentrt.eval.graders import grade
from agentrt.workflows.slow.experts import pick_vote
from agentrt.workflows.slow.toolcall import tool_answer


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the evaluation's --out folder (traces.db and runs/*/results.jsonl)")
    p.add_argument("--json", action="store_true", help="print the per-problem rows as JSON lines")
    return p.parse_args()


def tool_runs(db: sqlite3.Connection, trace_id: str) -> list[str]:
    """Printed answers of the trace's successful python runs, in order (greedy first)."""
    rows = db.execute("select outputs, status from steps where trace_id = ? and kind = 'tool' "
                      "order by id", (trace_id,)).fetchall()
    answers = []
    for outputs, status in rows:
        out = json.loads(outputs or "{}")
        printed = str(out.get("stdout", "")).strip()
        if status == "ok" and out.get("exit_code") in (0, None) and printed:
            answers.append(tool_answer(out))
        else:
            answers.append("")
    return answers


def main() -> int:
    args = parse()
    out = Path(args.out)
    db = sqlite3.connect(out / "traces.db")
    rows = []
    for results in sorted(out.glob("runs/*/results.jsonl")):
        for line in results.read_text().splitlines():
            r = json.loads(line)
            problem = Problem(id=r["problem_id"], text="?", answer=r["reference"],
                              grader=r["grader"])
            runs = tool_runs(db, r["trace_id"])
            hit = [bool(a) and grade(a, problem).correct for a in runs]
            votes = db.execute("select outputs from steps where trace_id = ? and name = "
                               "'tool_vote'", (r["trace_id"],)).fetchall()
            vote = json.loads(votes[0][0]) if votes else {}
            voted = vote["chosen"] if vote else (runs[0] if runs else "")
            by_rule = {}
            for rule in ("majority", "coverage"):  # what each rule would have picked
                if vote.get("coverage"):
                    a = vote["answers"][pick_vote(vote["answers"], vote["coverage"], rule)]
                else:
                    a = voted
                by_rule[rule] = bool(a) and grade(a, problem).correct
            rows.append({"id": r["problem_id"], "final_correct": r["correct"],
                         "greedy_correct": bool(hit[:1] and hit[0]),
                         "voted_correct": bool(voted) and grade(voted, problem).correct,
                         "majority_correct": by_rule["majority"],
                         "coverage_correct": by_rule["coverage"],
                         "any_correct": any(hit), "runs": len(runs),
                         "agreeing": vote.get("votes", 0),
                         "tokens": r["prompt_tokens"] + r["completion_tokens"]})
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    n = max(len(rows), 1)
    count = lambda key: sum(r[key] for r in rows)  # noqa: E731
    print(f"| problems | greedy call right | voted answer right | by majority | by coverage | "
          f"any run right (oracle) | final answer right | votes of 2+ | tokens per problem |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {len(rows)} | {count('greedy_correct')} | {count('voted_correct')} | "
          f"{count('majority_correct')} | {count('coverage_correct')} | "
          f"{count('any_correct')} | {count('final_correct')} | "
          f"{sum(r['agreeing'] >= 2 for r in rows)} | {count('tokens') / n:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
