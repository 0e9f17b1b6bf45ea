"""Multi-step integer arithmetic: "Compute 37 * 42 + 15." and longer expressions.

Level 1 is one of a*b+c, a*b-c, a+b*c, (a+b)*c with two-digit numbers; level 2 has three or
four operations with parentheses and an exact division; level 3 has five or six operations and
negative numbers. Divisions always come out whole, so the program can use `//`.
"""

from __future__ import annotations

import random

from agentrt.data_synth.generators.base import Draft

__all__ = ["make"]

_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}
_VERBS = ("Compute", "Calculate", "Evaluate", "What is")


class _Node:
    __slots__ = ("op", "left", "right", "value")

    def __init__(self, op: str | None, value: int, left: "_Node | None" = None, right: "_Node | None" = None):
        self.op, self.value, self.left, self.right = op, value, left, right

    def render(self, division: str) -> str:
        if self.op is None:
            return f"({self.value})" if self.value < 0 else str(self.value)
        assert self.left is not None and self.right is not None
        left, right = self.left.render(division), self.right.render(division)
        if self.left.op and _PREC[self.left.op] < _PREC[self.op]:
            left = f"({left})"
        if self.right.op and (_PREC[self.right.op] < _PREC[self.op]
                              or (_PREC[self.right.op] == _PREC[self.op] and self.op in "-/")):
            right = f"({right})"
        shown = division if self.op == "/" else self.op
        return f"{left} {shown} {right}"


def _leaf(rng: random.Random, lo: int, hi: int, negative: bool) -> _Node:
    value = rng.randint(lo, hi)
    if negative and rng.random() < 0.3:
        value = -value
    return _Node(None, value)


def _divisor_leaf(rng: random.Random, value: int) -> _Node | None:
    choices = [d for d in range(2, 13) if value % d == 0 and value != 0]
    return _Node(None, rng.choice(choices)) if choices else None


def _tree(rng: random.Random, ops: int, lo: int, hi: int, negative: bool) -> _Node:
    if ops == 0:
        return _leaf(rng, lo, hi, negative)
    left_ops = rng.randint(0, ops - 1)
    left = _tree(rng, left_ops, lo, hi, negative)
    op = rng.choice("+-*/")
    if op == "/":
        divisor = _divisor_leaf(rng, left.value)
        if divisor is not None and ops - 1 - left_ops == 0:
            return _Node("/", left.value // divisor.value, left, divisor)
        op = rng.choice("+-*")
    right = _tree(rng, ops - 1 - left_ops, lo, hi, negative)
    if op == "*" and abs(left.value * right.value) > 10**6:
        op = "+"
    value = {"+": left.value + right.value, "-": left.value - right.value, "*": left.value * right.value}[op]
    return _Node(op, value, left, right)


def _has_division(node: _Node) -> bool:
    if node.op is None:
        return False
    return node.op == "/" or _has_division(node.left) or _has_division(node.right)  # type: ignore[arg-type]


def _level1(rng: random.Random) -> _Node:
    a, b, c = (rng.randint(10, 99) for _ in range(3))
    shape = rng.randrange(4)
    if shape == 0:
        return _Node("+", a * b + c, _Node("*", a * b, _Node(None, a), _Node(None, b)), _Node(None, c))
    if shape == 1:
        return _Node("-", a * b - c, _Node("*", a * b, _Node(None, a), _Node(None, b)), _Node(None, c))
    if shape == 2:
        return _Node("+", a + b * c, _Node(None, a), _Node("*", b * c, _Node(None, b), _Node(None, c)))
    return _Node("*", (a + b) * c, _Node("+", a + b, _Node(None, a), _Node(None, b)), _Node(None, c))


def make(rng: random.Random, level: int) -> Draft:
    """Draw one arithmetic problem at `level`."""
    if level == 1:
        tree = _level1(rng)
    else:
        ops, hi, negative = (rng.randint(3, 4), 60, False) if level == 2 else (rng.randint(5, 6), 40, True)
        tree = _tree(rng, ops, 2, hi, negative)
        for _ in range(50):
            if _has_division(tree):
                break
            tree = _tree(rng, ops, 2, hi, negative)
    shown = tree.render("/")
    verb = rng.choice(_VERBS)
    text = f"{verb} {shown}{'?' if verb == 'What is' else '.'}"
    return Draft(text=text, answer=str(tree.value), grader="numeric",
                 program=f"print({tree.render('//')})", meta={"expression": shown})
