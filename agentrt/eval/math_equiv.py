"""Equivalence of two MATH-style answers: fast paths here, symbolic check in the sandboxed sympy tool.

Order: normalized strings equal; both simple numbers (exact, then within tolerance); tuples,
intervals and lists element by element (bare comma lists as multisets); finally sympy through
`agentrt.tools.get_tool("sympy")`, which parses the LaTeX inside the sandbox because sympy's parser uses
`eval`. A single top-level "\\pm" stands for the two answers it abbreviates.
A tool that is missing or fails counts as "not equivalent" and the reason says why.
This module does not extract answers from text and never evaluates model text in-process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentrt import tools
from agentrt.core.errors import AgentrtError, ToolError, ToolInputError
from agentrt.eval.latex import math_number, normalize_math, split_bracketed
from agentrt.eval.numbers import numbers_close
from agentrt.tools.latex import to_sympy_syntax

__all__ = ["math_equivalent", "symbolic_equivalent"]

SymbolicCheck = Callable[[str, str], tuple[bool, str]]


def _run_equiv(tool: Any, a: str, b: str) -> Any:
    return tool.run({"op": "equiv", "expr": a, "other": b})


def symbolic_equivalent(a: str, b: str) -> tuple[bool, str]:
    """Ask the sandboxed sympy tool whether two normalized LaTeX answers are equal.

    The tool reads LaTeX itself; when it refuses the input, the answers are sent once more in
    plain sympy syntax (see `to_sympy_syntax`).

    Returns:
        (equivalent, reason). Never raises for tool trouble: a missing tool or a ToolError is
        (False, reason naming it).
    """
    try:
        tool = tools.get_tool("sympy")
    except (AgentrtError, LookupError) as e:
        return False, f"symbolic check unavailable: {e}"
    try:
        try:
            out: Any = _run_equiv(tool, a, b)
        except ToolInputError:
            plain_a, plain_b = to_sympy_syntax(a), to_sympy_syntax(b)
            if (plain_a, plain_b) == (a, b):
                raise
            out = _run_equiv(tool, plain_a, plain_b)
    except ToolError as e:
        return False, f"sympy tool failed ({e.code}): {e}"
    if not isinstance(out, dict) or not isinstance(out.get("equivalent"), bool):
        return False, f"sympy tool gave no verdict: {str(out)[:120]}"
    return out["equivalent"], "sympy: equivalent" if out["equivalent"] else "sympy: not equivalent"


def _expand_pm(norm: str) -> str:
    """ "1\\pm\\sqrt{19}" -> "1+\\sqrt{19},1-\\sqrt{19}" (one top-level plus-minus only)."""
    if norm.count("\\pm") != 1 or len(split_bracketed(norm)[1]) > 1:
        return norm
    left, right = norm.split("\\pm")
    return f"{left}+{right},{left}-{right}" if left else f"{right},-{right}"


def _scalar_equivalent(a: str, b: str, symbolic: SymbolicCheck) -> tuple[bool, str]:
    if a == b:
        return True, "normalized strings equal"
    na, nb = math_number(a), math_number(b)
    if na is not None and nb is not None:
        if numbers_close(na, nb):
            return True, "numerically equal"
        return False, f"numbers differ: {a} vs {b}"
    return symbolic(a, b)


def _parts_equivalent(pa: list[str], pb: list[str], ordered: bool, symbolic: SymbolicCheck) -> tuple[bool, str]:
    if ordered:
        for x, y in zip(pa, pb):
            ok, why = _scalar_equivalent(x, y, symbolic)
            if not ok:
                return False, f"component {x} vs {y}: {why}"
        return True, "all components equal"
    remaining = list(pb)
    for x in pa:
        match = next((y for y in remaining if _scalar_equivalent(x, y, symbolic)[0]), None)
        if match is None:
            return False, f"no match for {x}"
        remaining.remove(match)
    return True, "same elements"


def math_equivalent(predicted: str, reference: str, symbolic: SymbolicCheck | None = None) -> tuple[bool, str, str]:
    """Whether two LaTeX answers are equal in value.

    Args:
        predicted: the model's answer ("0.5", "\\frac12", "$x = 5$").
        reference: the reference answer.
        symbolic: the symbolic check to use (default: the sandboxed sympy tool).

    Returns:
        (equivalent, reason, normalized predicted answer).

    Example:
        >>> math_equivalent("0.5", "\\\\frac{1}{2}")[:2]
        (True, 'numerically equal')
    """
    check = symbolic or symbolic_equivalent
    norm, ref = normalize_math(predicted), normalize_math(reference)
    if not norm:
        return False, "empty answer", norm
    if norm == ref:
        return True, "normalized strings equal", norm
    a, b = _expand_pm(norm), _expand_pm(ref)
    oa, pa, ca = split_bracketed(a)
    ob, pb, cb = split_bracketed(b)
    if len(pa) > 1 or len(pb) > 1:
        if len(pa) != len(pb):
            return False, f"{len(pa)} components vs {len(pb)}", norm
        if (oa, ca) != (ob, cb) and oa and ob:
            return False, f"brackets differ: {oa}{ca} vs {ob}{cb}", norm
        ok, why = _parts_equivalent(pa, pb, bool(oa or ob), check)
        return ok, why, norm
    ok, why = _scalar_equivalent(a, b, check)
    return ok, why, norm
