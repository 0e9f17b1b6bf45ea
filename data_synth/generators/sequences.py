"""Next term of a sequence: arithmetic, geometric, quadratic, Fibonacci-like.

Level 1 is arithmetic (five terms shown); level 2 geometric with a whole ratio, or arithmetic
with a negative step; level 3 quadratic (constant second difference) or each term the sum of the
two before it (six terms shown). The program derives the rule from the shown terms.
"""

from __future__ import annotations

import random

from agentrt.data_synth.generators.base import Draft

__all__ = ["make"]

_PROGRAMS = {
    "arithmetic": "s = {terms}\nprint(s[-1] + (s[-1] - s[-2]))",
    "geometric": "s = {terms}\nprint(s[-1] * (s[-1] // s[-2]))",
    "quadratic": "s = {terms}\nd = [b - a for a, b in zip(s, s[1:])]\nprint(s[-1] + d[-1] + (d[-1] - d[-2]))",
    "fibonacci": "s = {terms}\nprint(s[-1] + s[-2])",
}


def _terms(rng: random.Random, kind: str, count: int) -> list[int]:
    if kind == "arithmetic":
        start, step = rng.randint(-20, 50), rng.choice([v for v in range(-12, 16) if v != 0])
        return [start + i * step for i in range(count)]
    if kind == "geometric":
        start, ratio = rng.randint(1, 9) * rng.choice((1, -1)), rng.choice((2, 3, 4, 5, -2, -3))
        return [start * ratio**i for i in range(count)]
    if kind == "quadratic":
        a, b, c = rng.randint(1, 4), rng.randint(-6, 6), rng.randint(-10, 10)
        offset = rng.randint(0, 4)
        return [a * (i + offset) ** 2 + b * (i + offset) + c for i in range(count)]
    s = [rng.randint(1, 9), rng.randint(1, 12)]
    while len(s) < count:
        s.append(s[-1] + s[-2])
    return s


def make(rng: random.Random, level: int) -> Draft:
    """Draw one next-term problem at `level`."""
    if level == 1:
        kind, shown = "arithmetic", 5
    elif level == 2:
        kind, shown = rng.choice(("geometric", "geometric", "arithmetic")), 5
    else:
        kind, shown = rng.choice(("quadratic", "quadratic", "fibonacci")), 6
    terms = _terms(rng, kind, shown + 1)
    visible, answer = terms[:shown], terms[shown]
    text = f"What is the next number in the sequence {', '.join(map(str, visible))}, ...?"
    return Draft(text=text, answer=str(answer), grader="numeric",
                 program=_PROGRAMS[kind].format(terms=visible), meta={"kind": kind})
