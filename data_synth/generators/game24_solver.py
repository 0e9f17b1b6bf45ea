"""Exact Game of 24 solver: every way to combine the numbers with + - * / and parentheses.

Search combines any two remaining values with each operator (both orders for - and /) until one
value is left. The search runs on floats for speed and every candidate it finds is confirmed
with `fractions.Fraction` (division by an exact zero is refused), so 8 / (3 - 8 / 3) counts and
nothing inexact does. Expressions come back fully parenthesized except for the outermost pair.
`SOLVER_PROGRAM` is the same search in exact fractions as a short standalone script, used as the
solution program of generated puzzles; it finds the same first solution as `first_solution`. This module knows nothing about problems or graders.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache
from typing import Union

__all__ = ["first_solution", "all_solutions", "is_solvable", "count_solutions", "SOLVER_PROGRAM"]

# An expression tree: a leaf number, or (operator, left, right).
Tree = Union[int, tuple[str, "Tree", "Tree"]]
Item = tuple[float, Tree]
_TOLERANCE = 1e-9


def _combine(a: Item, b: Item) -> list[Item]:
    """Every way to combine two values, in the order `SOLVER_PROGRAM` uses."""
    (x, ex), (y, ey) = a, b
    made: list[Item] = [(x + y, ("+", ex, ey)), (x * y, ("*", ex, ey)), (x - y, ("-", ex, ey)),
                        (y - x, ("-", ey, ex))]
    if y != 0:
        made.append((x / y, ("/", ex, ey)))
    if x != 0:
        made.append((y / x, ("/", ey, ex)))
    return made


class _Enough(Exception):
    """Raised to stop the search once the collector has what it needs."""


class _Collector:
    """Distinct exact solutions in search order, up to `limit`."""

    def __init__(self, target: int, limit: int | None):
        self.target, self.limit = target, limit
        self.found: dict[str, None] = {}

    def offer(self, tree: Tree) -> None:
        if _exact(tree) != self.target:
            return  # a float near-miss or a division by an exact zero
        self.found.setdefault(_strip_outer(_render(tree)), None)
        if self.limit is not None and len(self.found) >= self.limit:
            raise _Enough


def _search(items: list[Item], target: float, out: _Collector) -> None:
    """Depth-first search; the last combination step is inlined because it dominates the cost."""
    n = len(items)
    if n == 1:
        if abs(items[0][0] - target) <= _TOLERANCE:
            out.offer(items[0][1])
        return
    if n == 2:
        for value, tree in _combine(items[0], items[1]):
            if abs(value - target) <= _TOLERANCE:
                out.offer(tree)
        return
    for i in range(n):
        for j in range(i + 1, n):
            rest = [items[k] for k in range(n) if k != i and k != j]
            for made in _combine(items[i], items[j]):
                rest.append(made)
                _search(rest, target, out)
                rest.pop()


def _render(tree: Tree) -> str:
    if isinstance(tree, int):
        return str(tree)
    op, left, right = tree
    return f"({_render(left)} {op} {_render(right)})"


def _exact(tree: Tree) -> Fraction | None:
    """The exact value of a tree, or None when it divides by zero."""
    if isinstance(tree, int):
        return Fraction(tree)
    op, left, right = tree
    a, b = _exact(left), _exact(right)
    if a is None or b is None:
        return None
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


def _solve(numbers: Sequence[int], target: int, limit: int | None) -> list[str]:
    """Exact solutions in search order: floats find candidates fast, fractions confirm them."""
    if not numbers or any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
        raise ValueError("numbers must be a non-empty sequence of ints")
    out = _Collector(target, limit)
    try:
        _search([(float(n), n) for n in numbers], float(target), out)
    except _Enough:
        pass
    return list(out.found)


def _strip_outer(expr: str) -> str:
    return expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr


def first_solution(numbers: Sequence[int], target: int = 24) -> str | None:
    """The first expression found that makes `target`, or None when there is none.

    Example:
        >>> first_solution([4, 9, 10, 13])
        '(4 - 10) * (9 - 13)'
    """
    found = _solve(numbers, target, limit=1)
    return found[0] if found else None


def all_solutions(numbers: Sequence[int], target: int = 24, limit: int | None = None) -> list[str]:
    """Distinct expressions (as strings) that make `target`, in search order, at most `limit`."""
    return _solve(numbers, target, limit)


@lru_cache(maxsize=4096)
def count_solutions(numbers: tuple[int, ...], target: int = 24, limit: int | None = None) -> int:
    """Number of distinct solution strings (at most `limit`) for a tuple of numbers (cached)."""
    return len(all_solutions(list(numbers), target, limit))


def is_solvable(numbers: Sequence[int], target: int = 24) -> bool:
    """True when some expression with each number once makes `target`."""
    return first_solution(numbers, target) is not None


SOLVER_PROGRAM = '''from fractions import Fraction

def search(items):
    if len(items) == 1:
        return items[0][1] if items[0][0] == 24 else None
    for i in range(len(items)):
        for j in range(i + 1, len(items)):
            rest = [items[k] for k in range(len(items)) if k not in (i, j)]
            (x, ex), (y, ey) = items[i], items[j]
            made = [(x + y, f"({{ex}} + {{ey}})"), (x * y, f"({{ex}} * {{ey}})"),
                    (x - y, f"({{ex}} - {{ey}})"), (y - x, f"({{ey}} - {{ex}})")]
            if y != 0:
                made.append((x / y, f"({{ex}} / {{ey}})"))
            if x != 0:
                made.append((y / x, f"({{ey}} / {{ex}})"))
            for item in made:
                found = search(rest + [item])
                if found:
                    return found
    return None

expr = search([(Fraction(n), str(n)) for n in {numbers}])
print(expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr)
'''
