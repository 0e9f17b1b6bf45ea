"""Exact Game of 24 solver: every way to combine the numbers with + - * / and parentheses.

Search combines any two remaining values with each operator (both orders for - and /) until one
value is left, with `fractions.Fraction` so 8 / (3 - 8 / 3) counts. Expressions come back fully
parenthesized except for the outermost pair. `SOLVER_PROGRAM` is the same search as a short
standalone script, used as the solution program of generated puzzles; it finds the same first
solution as `first_solution`. This module knows nothing about problems or graders.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction
from functools import lru_cache

__all__ = ["first_solution", "all_solutions", "is_solvable", "count_solutions", "SOLVER_PROGRAM"]

Item = tuple[Fraction, str]


def _combine(a: Item, b: Item) -> Iterator[Item]:
    (x, ex), (y, ey) = a, b
    yield x + y, f"({ex} + {ey})"
    yield x * y, f"({ex} * {ey})"
    yield x - y, f"({ex} - {ey})"
    yield y - x, f"({ey} - {ex})"
    if y != 0:
        yield x / y, f"({ex} / {ey})"
    if x != 0:
        yield y / x, f"({ey} / {ex})"


def _search(items: list[Item], target: Fraction) -> Iterator[str]:
    if len(items) == 1:
        if items[0][0] == target:
            yield items[0][1]
        return
    n = len(items)
    for i in range(n):
        for j in range(i + 1, n):
            rest = [items[k] for k in range(n) if k != i and k != j]
            for made in _combine(items[i], items[j]):
                yield from _search(rest + [made], target)


def _strip_outer(expr: str) -> str:
    return expr[1:-1] if expr.startswith("(") and expr.endswith(")") else expr


def _items(numbers: Sequence[int]) -> list[Item]:
    if not numbers or any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
        raise ValueError("numbers must be a non-empty sequence of ints")
    return [(Fraction(n), str(n)) for n in numbers]


def first_solution(numbers: Sequence[int], target: int = 24) -> str | None:
    """The first expression found that makes `target`, or None when there is none.

    Example:
        >>> first_solution([4, 9, 10, 13])
        '(4 - 10) * (9 - 13)'
    """
    for expr in _search(_items(numbers), Fraction(target)):
        return _strip_outer(expr)
    return None


def all_solutions(numbers: Sequence[int], target: int = 24, limit: int | None = None) -> list[str]:
    """Distinct expressions (as strings) that make `target`, in search order, at most `limit`."""
    seen: dict[str, None] = {}
    for expr in _search(_items(numbers), Fraction(target)):
        seen.setdefault(_strip_outer(expr), None)
        if limit is not None and len(seen) >= limit:
            break
    return list(seen)


@lru_cache(maxsize=4096)
def count_solutions(numbers: tuple[int, ...], target: int = 24) -> int:
    """Number of distinct solution strings for a sorted tuple of numbers (cached)."""
    return len(all_solutions(list(numbers), target))


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
