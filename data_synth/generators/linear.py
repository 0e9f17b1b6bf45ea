"""Linear equations and systems with whole-number solutions.

Level 1 is one equation in x (ax + b = c, a(x - b) = c, or x on both sides); level 2 a 2x2
system; level 3 a 3x3 system. The solution is chosen first and the coefficients around it, with a
non-zero determinant, so the answer ("x=2, y=-1") is exact and unique. Graded by `equation`.
"""

from __future__ import annotations

import random
from fractions import Fraction

from agentrt.data_synth.generators.base import Draft, linear_expr

__all__ = ["make"]

_VARS = ("x", "y", "z")

_ELIMINATION = '''from fractions import Fraction

rows = {rows}
m = [[Fraction(v) for v in row] for row in rows]
n = len(m)
for i in range(n):
    p = next(r for r in range(i, n) if m[r][i] != 0)
    m[i], m[p] = m[p], m[i]
    for r in range(n):
        if r != i:
            f = m[r][i] / m[i][i]
            m[r] = [a - f * b for a, b in zip(m[r], m[i])]
names = {names}
print(", ".join(f"{{name}}={{m[i][n] / m[i][i]}}" for i, name in enumerate(names)))
'''


def _det(m: list[list[int]]) -> Fraction:
    a = [[Fraction(v) for v in row] for row in m]
    n, det = len(a), Fraction(1)
    for i in range(n):
        p = next((r for r in range(i, n) if a[r][i] != 0), None)
        if p is None:
            return Fraction(0)
        if p != i:
            a[i], a[p] = a[p], a[i]
            det = -det
        det *= a[i][i]
        for r in range(i + 1, n):
            f = a[r][i] / a[i][i]
            a[r] = [x - f * y for x, y in zip(a[r], a[i])]
    return det


def _one_equation(rng: random.Random) -> Draft:
    x = rng.randint(-12, 12)
    a = rng.choice([v for v in range(-9, 10) if v not in (0, 1)])
    shape = rng.randrange(3)
    if shape == 0:
        b = rng.randint(-30, 30)
        lhs, rhs = linear_expr([a], ["x"], b), str(a * x + b)
        prog = f"from fractions import Fraction\nx = Fraction({a * x + b} - ({b}), {a})\nprint(f\"x={{x}}\")"
    elif shape == 1:
        b = rng.randint(-9, 9)
        inner = linear_expr([1], ["x"], -b)
        lhs, rhs = f"{a}({inner})", str(a * (x - b))
        prog = f"from fractions import Fraction\nx = Fraction({a * (x - b)}, {a}) + ({b})\nprint(f\"x={{x}}\")"
    else:
        d = rng.choice([v for v in range(-9, 10) if v != a])
        b = rng.randint(-20, 20)
        e = a * x + b - d * x
        lhs, rhs = linear_expr([a], ["x"], b), linear_expr([d], ["x"], e)
        prog = f"from fractions import Fraction\nx = Fraction({e} - ({b}), {a} - ({d}))\nprint(f\"x={{x}}\")"
    text = f"Solve for x: {lhs} = {rhs}. Answer in the form x=<value>."
    return Draft(text=text, answer=f"x={x}", grader="equation", program=prog, meta={"solution": {"x": x}})


def _system(rng: random.Random, n: int) -> Draft:
    names = list(_VARS[:n])
    sol = [rng.randint(-9, 9) for _ in range(n)]
    while True:
        coefs = [[rng.randint(-6, 6) for _ in range(n)] for _ in range(n)]
        if _det(coefs) != 0 and all(sum(1 for c in row if c) >= 2 for row in coefs):
            break
    rows = [row + [sum(c * v for c, v in zip(row, sol))] for row in coefs]
    eqs = [f"{linear_expr(row[:n], names)} = {row[n]}" for row in rows]
    joined = ", ".join(eqs[:-1]) + f" and {eqs[-1]}"
    form = ", ".join(f"{v}=<value>" for v in names)
    text = f"Solve the system of equations {joined}. Answer in the form {form}."
    answer = ", ".join(f"{v}={s}" for v, s in zip(names, sol))
    return Draft(text=text, answer=answer, grader="equation",
                 program=_ELIMINATION.format(rows=rows, names=names),
                 meta={"solution": dict(zip(names, sol))})


def make(rng: random.Random, level: int) -> Draft:
    """Draw one linear equation (level 1) or a 2x2 (level 2) / 3x3 (level 3) system."""
    return _one_equation(rng) if level == 1 else _system(rng, level)
