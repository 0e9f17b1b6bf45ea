"""Exact evaluation of small arithmetic expressions from untrusted text, without `eval`.

The text is parsed with `ast` into a tree that may hold only whole-number literals, the binary
operators + - * /, unary minus/plus and parentheses; anything else (names, calls, powers,
floats, attributes) is refused before any evaluation. Values are `fractions.Fraction`, so
"8 / (3 - 8 / 3)" is exactly 24. This module knows nothing about puzzles or graders.
"""

from __future__ import annotations

import ast
from fractions import Fraction

from agentrt.core.errors import ParseError

__all__ = ["evaluate_arithmetic", "normalize_operators", "MAX_EXPRESSION_CHARS"]

MAX_EXPRESSION_CHARS = 300

_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REPLACE = {
    "×": "*", "∗": "*", "·": "*", "÷": "/", "−": "-", "–": "-", "[": "(", "]": ")", "{": "(",
    "}": ")", "\\times": "*", "\\cdot": "*", "\\div": "/", "\\left": "", "\\right": "",
}


def normalize_operators(text: str) -> str:
    """Spell multiplication, division, minus and brackets the ASCII way ("3×8" -> "3*8")."""
    for bad, good in _REPLACE.items():
        text = text.replace(bad, good)
    return text.strip()


def evaluate_arithmetic(expr: str, *, decimals: bool = False) -> tuple[Fraction, list]:
    """Evaluate `expr` exactly and list the number literals it uses, in order.

    Args:
        expr: e.g. "(10 - 4) * (13 - 9)"; "×", "÷" and square brackets are accepted.
        decimals: also accept decimal literals ("0.2 * 50"), read exactly as fractions, and
            floor division ("560 // 10"), as worked solutions write them.

    Returns:
        (value, numbers used).

    Raises:
        ParseError: not an expression of whole numbers with + - * / and parentheses.
        ZeroDivisionError: the expression divides by zero.

    Example:
        >>> evaluate_arithmetic("8 / (3 - 8 / 3)")
        (Fraction(24, 1), [8, 3, 8, 3])
    """
    text = normalize_operators(expr)
    if not text:
        raise ParseError("empty expression", raw=expr)
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ParseError(f"expression longer than {MAX_EXPRESSION_CHARS} characters", raw=expr[:80])
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError) as e:
        raise ParseError(f"not an arithmetic expression: {getattr(e, 'msg', e)}", raw=expr) from None
    used: list = []
    value = _walk(tree.body, used, expr, depth=0, decimals=decimals)
    return value, used


def _walk(node: ast.AST, used: list, raw: str, depth: int, decimals: bool) -> Fraction:
    if depth > 50:
        raise ParseError("expression nested too deeply", raw=raw)
    if isinstance(node, ast.Constant):
        if decimals and type(node.value) is float:
            used.append(node.value)
            return Fraction(str(node.value))
        if type(node.value) is not int:
            raise ParseError(f"only whole numbers are allowed, got {node.value!r}", raw=raw)
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _walk(node.left, used, raw, depth + 1, decimals)
        right = _walk(node.right, used, raw, depth + 1, decimals)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise ZeroDivisionError("division by zero")
        return left / right
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        inner = _walk(node.operand, used, raw, depth + 1, decimals)
        return -inner if isinstance(node.op, ast.USub) else inner
    if decimals and isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
        left = _walk(node.left, used, raw, depth + 1, decimals)
        right = _walk(node.right, used, raw, depth + 1, decimals)
        if right == 0:
            raise ZeroDivisionError("division by zero")
        return Fraction(left // right)
    what = type(node.op).__name__ if isinstance(node, (ast.BinOp, ast.UnaryOp)) else type(node).__name__
    raise ParseError(f"{what} is not allowed; use only numbers, + - * / and parentheses", raw=raw)
