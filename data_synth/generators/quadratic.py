"""Quadratic equations with whole-number roots.

Level 1 is monic (x^2 + bx + c = 0) with roots from -15 to 15; level 2 has a leading
coefficient 2-6; level 3 has terms on both sides that must be collected first. Roots are chosen
first, so the answer (the distinct roots, ascending: "-3, 2") is exact. Graded by `roots`, which
ignores order.
"""

from __future__ import annotations

import random

from agentrt.data_synth.generators.base import Draft

__all__ = ["make"]

_PROGRAM = '''import math

a, b, c = {abc}
d = math.isqrt(b * b - 4 * a * c)
roots = sorted({{(-b - d) // (2 * a), (-b + d) // (2 * a)}})
print(", ".join(str(r) for r in roots))
'''


def _poly(a: int, b: int, c: int) -> str:
    """ "2x^2 - 3x + 1" with zero terms left out."""
    parts: list[str] = []
    for coef, var in ((a, "x^2"), (b, "x"), (c, "")):
        if coef == 0:
            continue
        mag = "" if abs(coef) == 1 and var else str(abs(coef))
        if not parts:
            parts.append(f"{'-' if coef < 0 else ''}{mag}{var}")
        else:
            parts.append(f"{'-' if coef < 0 else '+'} {mag}{var}")
    return " ".join(parts) or "0"


def make(rng: random.Random, level: int) -> Draft:
    """Draw one quadratic equation with integer roots at `level`."""
    r1, r2 = rng.randint(-15, 15), rng.randint(-15, 15)
    a = 1 if level == 1 else rng.randint(2, 6)
    b, c = -a * (r1 + r2), a * r1 * r2
    if level < 3:
        equation = f"{_poly(a, b, c)} = 0"
        abc = f"{a}, {b}, {c}"
    else:  # move a random quadratic to the right-hand side; the program collects it back
        a2, b2, c2 = rng.randint(1, 3), rng.randint(-9, 9), rng.randint(-20, 20)
        equation = f"{_poly(a + a2, b + b2, c + c2)} = {_poly(a2, b2, c2)}"
        abc = f"{a + a2} - {a2}, {b + b2} - ({b2}), {c + c2} - ({c2})"
    program = _PROGRAM.format(abc=abc)
    roots = sorted({r1, r2})
    text = f"Find all real solutions of {equation}. List them separated by commas."
    return Draft(text=text, answer=", ".join(map(str, roots)), grader="roots", program=program,
                 meta={"roots": roots, "coefficients": [a, b, c]})
