"""Preference pairs that teach where a program stops: one step too many, or one too few.

The commonest failure of the shipped model on everyday questions is a right program followed by
a step nobody asked for (`spent = 50 - 18.75; left = 50 - spent`, `pages = 18 * 7; pages_2 =
pages * 7`): every GSM8K program it trained on has several steps, so it keeps going. SFT on
gold programs shows where to stop but never says that going on is wrong. These pairs do: the
chosen reply is a gold one-line program from an SFT dataset's tool calls, the rejected one the
same program with one more step (the last value combined with one of the problem's own
numbers, the way the model's extra steps look; a printed expression goes on past its end) or,
for a program of several steps, one step fewer (the value before the last printed). DPO then
compares the two exactly where they part:
print now, or write another step.

`step_pairs` reads rows of the form `agentrt.data_synth.compile` writes (`messages`, `step`,
`ok`, `source`) and returns rows for `agentrt.training.dpo` (`prompt`, `chosen`, `rejected`,
plus `kind` and the row's lineage). Rejected programs are not run: each is the chosen program
with a step added or removed, so its printed value differs unless a step is a no-op (never
generated: multipliers and divisors other than 0 and 1, addends other than 0).

This module knows the compact call form (`{"code": "a = ...; b = ...; print(b)"}`); it does
not know datasets' storage or trainers.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from typing import Any

from agentrt.workflows.slow.numbers import listed_numbers

__all__ = ["step_pairs", "split_steps"]

_ASSIGN = re.compile(r"^([A-Za-z_]\w*) = (.+)$")
_PRINT = re.compile(r"^print\(\s*(.+)\)$")
_PROBLEM = re.compile(r"^Problem: (.*)$", re.MULTILINE)


def split_steps(code: str) -> tuple[list[tuple[str, str]], str] | None:
    """A one-line program as its named steps and what it prints, or None for another form.

    Example:
        >>> split_steps("cost = 12 * 2; total = cost + 7; print(total)")
        ([('cost', '12 * 2'), ('total', 'cost + 7')], 'total')
    """
    parts = [p.strip() for p in code.split(";") if p.strip()]
    if not parts or not (printed := _PRINT.match(parts[-1])):
        return None
    steps = []
    for part in parts[:-1]:
        m = _ASSIGN.match(part)
        if m is None:
            return None
        steps.append((m.group(1), m.group(2)))
    return steps, printed.group(1).strip()


def _join(steps: list[tuple[str, str]], printed: str) -> str:
    # `print( (` as the gold teacher writes it (`print((` is one rare token to small models)
    shown = f"print( {printed})" if printed.startswith("(") else f"print({printed})"
    return "; ".join([f"{name} = {expr}" for name, expr in steps] + [shown])


def _extra(steps: list[tuple[str, str]], printed: str, numbers: list[str],
           rng: random.Random) -> str:
    """The program with one step more: the printed value combined with a given number."""
    usable = [n for n in numbers if "/" not in n and float(n) not in (0.0, 1.0)] or ["2"]
    op, number = rng.choice(["*", "+", "-", "/"]), rng.choice(usable)
    if not printed.isidentifier():  # `print(expr)`: the expression goes on past its end
        return _join(steps, f"{printed} {op} {number}")
    names = {name for name, _ in steps}
    base = re.sub(r"_\d+$", "", printed)
    k = 2
    while f"{base}_{k}" in names:
        k += 1
    return _join([*steps, (f"{base}_{k}", f"{printed} {op} {number}")], f"{base}_{k}")


def _fewer(steps: list[tuple[str, str]], printed: str) -> str | None:
    """The program one step short (the value before the last printed), or None."""
    if len(steps) < 2 or printed != steps[-1][0]:
        return None
    return _join(steps[:-1], steps[-2][0])


def _reply(code: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": json.dumps({"code": code}, ensure_ascii=False)}]


def step_pairs(rows: Iterable[dict[str, Any]], *, seed: int = 0,
               fewer_share: float = 0.3) -> list[dict[str, Any]]:
    """One pair per gold one-line tool call: rejected one step longer, or (a `fewer_share` of
    the programs with several steps) one step shorter.

    Rows that are not gold python tool calls of the compact form are skipped.
    """
    rng = random.Random(seed)
    pairs = []
    for row in rows:
        if row.get("step") != "tool_input" or row.get("source") != "gold" or not row.get("ok"):
            continue
        messages = list(row["messages"])
        try:
            code = json.loads(messages[-1]["content"])["code"]
        except (ValueError, KeyError, TypeError):
            continue
        split = split_steps(str(code))
        problem = _PROBLEM.search(messages[-2]["content"]) if len(messages) > 1 else None
        if split is None or problem is None:
            continue
        steps, printed = split
        rejected, kind = None, "extra"
        if rng.random() < fewer_share:
            rejected, kind = _fewer(steps, printed), "fewer"
        if rejected is None:
            rejected, kind = _extra(steps, printed, listed_numbers(problem.group(1)), rng), \
                "extra"
        pairs.append({"prompt": messages[:-1], "chosen": _reply(str(code)),
                      "rejected": _reply(rejected), "kind": kind,
                      "family": row.get("family", ""), "problem_id": row.get("problem_id", "")})
    return pairs
