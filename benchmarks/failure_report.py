"""What a model still gets wrong, read from one evaluation run's results and traces.

Each graded problem of an `agentrt eval` / `eval_embedded.py` run falls in one class, by what
its first tool call did:

- `right`: the final answer is right;
- `no program`: no python run (the design had no tool node, or the run was cut off);
- `unreadable call`: the tool call could not be read (`cut at the limit` when its reply hit the
  token limit, as a program that repeats itself does);
- `program error: <Error>`: the program ran and failed (NameError, SyntaxError, ...);
- `wrong program`: the program printed an answer, not the reference;
- `right program, wrong answer`: the program printed the reference, the final answer is not it.

With `--against` a second run of the same problems, the right answers are paired (right in
this run only, in the other only, in both) with an exact two-sided sign test:

    python benchmarks/failure_report.py runs/eval-new --against runs/eval-old --bench gsm8k

Prints markdown tables (`--examples N`: N programs of each failing class too).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter, defaultdict
from math import comb
from pathlib import Path

from agentrt.core.types import Problem
from agentrt.eval.graders import grade
from agentrt.workflows.slow.toolcall import tool_answer

CLASSES = ["right", "no program", "unreadable call", "cut at the limit", "program error",
           "wrong program", "right program, wrong answer"]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the evaluation's --out folder (traces.db, runs/*/results.jsonl)")
    p.add_argument("--against", help="another evaluation's --out folder, for paired figures")
    p.add_argument("--bench", help="only problems whose id starts with this (e.g. gsm8k)")
    p.add_argument("--examples", type=int, default=0, help="programs shown per failing class")
    return p.parse_args()


def results(out: Path, bench: str | None) -> list[dict]:
    rows = []
    for path in sorted(out.glob("runs/*/results.jsonl")):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if bench is None or r["problem_id"].startswith(bench):
                rows.append(r)
    return rows


def classify(db: sqlite3.Connection, r: dict) -> tuple[str, str]:
    """(class, the first tool call's code or what went wrong) of one graded problem."""
    steps = db.execute("select kind, name, status, outputs, error from steps where trace_id = ? "
                       "and superseded = 0 order by id", (r["trace_id"],)).fetchall()
    calls = [(json.loads(o or "{}"), e) for k, n, s, o, e in steps
             if k == "llm" and n == "tool_input"]
    runs = [json.loads(o or "{}") for k, n, s, o, e in steps if k == "tool" and n == "python"]
    code = _code(calls[0][0].get("text", "")) if calls else ""
    if r["correct"]:
        return "right", code
    if not calls:
        return "no program", ""
    if not runs:
        cut = calls[0][0].get("finish_reason") == "length"
        return ("cut at the limit" if cut else "unreadable call"), calls[0][0].get("text", "")
    first = runs[0]
    if first.get("exit_code") not in (0, None) or first.get("timed_out"):
        last = (str(first.get("stderr", "")).strip().splitlines() or ["?"])[-1]
        return f"program error: {last.split(':')[0]}", code
    problem = Problem(id=r["problem_id"], text="?", answer=r["reference"], grader=r["grader"])
    printed = tool_answer(first)
    if printed and grade(printed, problem).correct:
        return "right program, wrong answer", code
    return "wrong program", code


def _code(text: str) -> str:
    try:
        return str(json.loads(text).get("code", text))
    except (ValueError, AttributeError):
        return text


def sign_test(a: int, b: int) -> float:
    """Exact two-sided p-value of a against b discordant pairs (a sign test)."""
    n, k = a + b, min(a, b)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(comb(n, i) for i in range(k + 1)) / 2 ** n)


def report(out: Path, bench: str | None) -> dict[str, tuple[str, str, dict]]:
    db = sqlite3.connect(out / "traces.db")
    return {r["problem_id"]: (*classify(db, r), r) for r in results(out, bench)}


def main() -> int:
    args = parse()
    mine = report(Path(args.out), args.bench)
    counts = Counter(c.split(":")[0] if c.startswith("program error") else c
                     for c, _, _ in mine.values())
    errors = Counter(c.split(": ")[1] for c, _, _ in mine.values() if ":" in c)
    n = len(mine)
    print(f"{args.out}: {n} problems\n")
    print("| class | problems | share |\n| --- | ---: | ---: |")
    for c in CLASSES:
        detail = f" ({', '.join(f'{e} {k}' for e, k in errors.most_common())})" \
            if c == "program error" and errors else ""
        print(f"| {c}{detail} | {counts.get(c, 0)} | {counts.get(c, 0) / max(n, 1):.1%} |")
    if args.examples:
        shown: dict[str, list[str]] = defaultdict(list)
        for pid, (c, code, _) in mine.items():
            if c != "right" and len(shown[c]) < args.examples:
                shown[c].append(f"{pid}: {code[:160]!r}")
        for c, lines in sorted(shown.items()):
            print(f"\n{c}:\n" + "\n".join(f"- {line}" for line in lines))
    if args.against:
        other = report(Path(args.against), args.bench)
        both = sorted(set(mine) & set(other))
        a = sum(mine[p][2]["correct"] and not other[p][2]["correct"] for p in both)
        b = sum(other[p][2]["correct"] and not mine[p][2]["correct"] for p in both)
        same = sum(mine[p][2]["correct"] and other[p][2]["correct"] for p in both)
        print(f"\nPaired on {len(both)} problems against {args.against}: right here only {a}, "
              f"there only {b}, both {same}; exact sign test p = {sign_test(a, b):.2f}")
        moved = Counter((other[p][0].split(":")[0], mine[p][0].split(":")[0]) for p in both
                        if other[p][0] != mine[p][0])
        if moved:
            print("\n| there | here | problems |\n| --- | --- | ---: |")
            for (was, now), k in moved.most_common(12):
                print(f"| {was} | {now} | {k} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
