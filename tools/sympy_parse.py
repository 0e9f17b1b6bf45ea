"""Parsing model-written math into sympy objects, and deciding whether two answers are equal.

sympy's parser calls `eval`, so this module is used only INSIDE a confined sandbox process
(by `agentrt.tools.sympy_worker`, which the fork helper preloads), and even there text is
checked token by token and evaluated among math names only (`_check_tokens`, `_GLOBALS`): the
answer being graded shares the process with the reference and the verdict. Parsing accepts plain text and
simple LaTeX (see `agentrt.tools.latex`): expressions, "x = 3" equations, tuples, sets, intervals and
percentages. `equivalent` compares answers structurally, symbolically, then numerically with a
relative tolerance. This module knows nothing about processes, limits or tool input formats.
"""

from __future__ import annotations

import io
import keyword
import random
import re
import tokenize
from typing import Any

import sympy as sp
from sympy.parsing.sympy_parser import (
    convert_equals_signs,
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from agentrt.tools.latex import latex_to_text, split_top_level

__all__ = ["parse_math", "equivalent", "WorkerInputError"]

_TRANSFORMS = standard_transformations + (implicit_multiplication_application, convert_xor, convert_equals_signs)
_MAX_CHARS = 20_000
# The only names the parser's `eval` sees besides symbols: math functions and constants, the
# number and symbol classes its own transformations write, no builtins. Any other name in the
# text becomes a plain symbol (`f(x)` an undefined function), so nothing the text names can
# read, write or import anything, and with the token rules of `_check_tokens` no text can reach
# an attribute or build a string either.
_MATH_NAMES = (
    "sqrt root cbrt exp log sin cos tan cot sec csc asin acos atan acot asec acsc atan2 sinh cosh "
    "tanh coth asinh acosh atanh pi E I oo zoo nan Abs sign floor ceiling frac factorial "
    "factorial2 binomial gcd lcm Mod Min Max re im arg conjugate gamma Rational Integer Float "
    "Symbol Function Eq Ne Lt Le Gt Ge Interval FiniteSet Union Intersection Complement EmptySet "
    "Tuple And Or Not").split()
_GLOBALS: dict[str, Any] = {"__builtins__": {}, **{n: getattr(sp, n) for n in _MATH_NAMES},
                            "ln": sp.log, "abs": sp.Abs, "max": sp.Max, "min": sp.Min}
_KEYWORDS_ALLOWED = {"True", "False", "and", "or", "not"}
_STRINGS = {tokenize.STRING, getattr(tokenize, "FSTRING_START", tokenize.STRING)}  # 3.12 f-strings


class WorkerInputError(ValueError):
    """The model's input cannot be parsed or does not fit the operation."""


def _locals(names: list[str]) -> dict[str, Any]:
    table: dict[str, Any] = {"e": sp.E, "i": sp.I, "oo": sp.oo, "EmptySet": sp.EmptySet}
    for n in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n):
            raise WorkerInputError(f"invalid symbol name {n!r}")
        table[n] = sp.Symbol(n)
    return table


def _check_tokens(s: str) -> None:
    """Refuse text that is not math before `eval` sees it: string literals, attribute access
    (`.` outside a number), names that start with `_`, Python keywords other than
    True/False/and/or/not, and statement punctuation (`;`, `:=`, `@`)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(s).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError) as e:
        raise WorkerInputError(f"cannot parse {s[:200]!r}: {e}"[:500]) from None
    for tok in tokens:
        if tok.type in _STRINGS:
            raise WorkerInputError("a math expression holds no quoted text")
        if tok.type == tokenize.NAME and (tok.string.startswith("_") or (
                keyword.iskeyword(tok.string) and tok.string not in _KEYWORDS_ALLOWED)):
            raise WorkerInputError(f"{tok.string!r} is not a math name")
        if tok.type == tokenize.OP and tok.string in (".", "...", ";", ":=", "@", "@="):
            raise WorkerInputError(f"{tok.string!r} has no meaning in a math expression")


def _interval(s: str, names: list[str]) -> Any | None:
    m = re.fullmatch(r"([\[(])(.*)([\])])", s)
    if not m or (m.group(1) == "(" and m.group(3) == ")"):
        return None
    parts = split_top_level(m.group(2))
    if len(parts) != 2:
        return None
    lo, hi = (parse_math(p, names) for p in parts)
    return sp.Interval(lo, hi, left_open=m.group(1) == "(", right_open=m.group(3) == ")")


def parse_math(text: str, names: list[str] | None = None, *, percent: str = "divide") -> Any:
    """Parse plain text or simple LaTeX into a sympy object.

    Args:
        text: the expression, equation ("x = 3"), tuple, set or interval.
        names: names to force as plain symbols (also turns off e and i as constants).
        percent: "divide" reads 50% as 1/2; "strip" reads it as 50.

    Raises:
        WorkerInputError: the text is empty, too long or not parseable.
    """
    names = list(names or [])
    if not isinstance(text, str) or not text.strip():
        raise WorkerInputError("expression is empty")
    if len(text) > _MAX_CHARS:
        raise WorkerInputError(f"expression longer than {_MAX_CHARS} characters")
    s = latex_to_text(text)
    s = re.sub(r"%", "" if percent == "strip" else "/100", s)
    iv = _interval(s, names)
    if iv is not None:
        return iv
    _check_tokens(s)
    try:
        obj = parse_expr(s, local_dict=_locals(names), global_dict=dict(_GLOBALS),
                         transformations=_TRANSFORMS, evaluate=True)
    except WorkerInputError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser failure is the model's input
        raise WorkerInputError(f"cannot parse {text[:200]!r}: {type(e).__name__}: {e}"[:500]) from None
    if isinstance(obj, (set, frozenset)):
        return sp.FiniteSet(*obj)
    if isinstance(obj, (tuple, list)):
        return sp.Tuple(*obj)
    if isinstance(obj, bool):
        return sp.true if obj else sp.false
    if not isinstance(obj, sp.Basic):
        raise WorkerInputError(f"{text[:200]!r} is not a math expression")
    return obj


def _numeric_equal(a: Any, b: Any, tol: float) -> bool:
    free = sorted((a.free_symbols | b.free_symbols), key=str)
    rng = random.Random(12345)
    points = [{s: sp.Float(rng.uniform(0.3, 2.7)) for s in free} for _ in range(6 if free else 1)]
    checked = 0
    for pt in points:
        va, vb = complex(sp.N(a.subs(pt))), complex(sp.N(b.subs(pt)))
        if any(map(lambda v: v != v or abs(v) == float("inf"), (va, vb))):
            continue
        if abs(va - vb) > tol * max(1.0, abs(va), abs(vb)):
            return False
        checked += 1
    return checked > 0


def _scalar_equiv(a: Any, b: Any, tol: float) -> tuple[bool, str]:
    if a == b:
        return True, "structural"
    if isinstance(a, sp.Equality) or isinstance(b, sp.Equality):
        return _equation_equiv(a, b, tol)
    if isinstance(a, sp.Interval) and isinstance(b, (sp.Interval, sp.Tuple)):
        b = b if isinstance(b, sp.Interval) else sp.Interval.open(*b) if len(b) == 2 else b
    if isinstance(a, sp.Set) or isinstance(b, sp.Set):
        return bool(a == b or (isinstance(a, sp.Set) and isinstance(b, sp.Set) and a.symmetric_difference(b) == sp.EmptySet)), "set"
    if not (isinstance(a, sp.Expr) and isinstance(b, sp.Expr)):
        return False, "structural"
    try:
        if sp.simplify(a - b) == 0:
            return True, "symbolic"
    except Exception:  # noqa: BLE001 - fall through to numeric evaluation
        pass
    try:
        return _numeric_equal(a, b, tol), "numeric"
    except (TypeError, ValueError):
        return False, "numeric"


def _equation_equiv(a: Any, b: Any, tol: float) -> tuple[bool, str]:
    sides = []
    for x in (a, b):
        if isinstance(x, sp.Equality) and isinstance(x.lhs, sp.Symbol) and not x.rhs.has(x.lhs):
            sides.append(("value", x.rhs))
        elif isinstance(x, sp.Equality):
            sides.append(("eq", x.lhs - x.rhs))
        else:
            sides.append(("value", x))
    (ka, va), (kb, vb) = sides
    if ka == kb == "eq":
        ok, how = _scalar_equiv(va, vb, tol)
        return (ok, how) if ok else _scalar_equiv(va, -vb, tol)
    return _scalar_equiv(va, vb, tol)


def equivalent(a: Any, b: Any, tol: float = 1e-6) -> tuple[bool, str]:
    """Are two parsed answers the same? Tuples compare elementwise, sets as sets, numbers with
    relative tolerance `tol`. Returns (equal, method)."""
    if isinstance(a, sp.Tuple) and isinstance(b, sp.Tuple):
        if len(a) != len(b):
            return False, "structural"
        results = [_scalar_equiv(x, y, tol) for x, y in zip(a, b)]
        return all(r[0] for r in results), "elementwise"
    if isinstance(a, sp.FiniteSet) and isinstance(b, sp.FiniteSet):
        if len(a) != len(b):
            return False, "set"
        return all(any(_scalar_equiv(x, y, tol)[0] for y in b) for x in a), "set"
    return _scalar_equiv(a, b, tol)
