"""What every problem family shares: the draft a maker returns, the family record, and shared text utilities.

A family's `make(rng, level)` draws one problem at difficulty `level` (1-3) from a seeded
`random.Random` and returns a `Draft`: the text, the exact answer as text, the grader that
checks it, and a short standalone Python program that prints exactly that answer. Makers
compute answers with their own code; the program is text for later tool-call traces and is
never run in this process. This module knows nothing about specific families or the registry.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from agentrt.eval.numbers import format_number

__all__ = ["Draft", "Family", "Maker", "problem_id", "number", "signed_term", "linear_expr", "NAMES",
           "PRINT_NUMBER", "is_terminating"]


@dataclass(frozen=True)
class Draft:
    """One drawn problem before it gets an id: text, exact answer, grader, solution program."""

    text: str
    answer: str
    grader: str
    program: str
    meta: dict[str, Any] = field(default_factory=dict)


Maker = Callable[[random.Random, int], Draft]


@dataclass(frozen=True)
class Family:
    """A registered problem family: its name, maker and a one-line description."""

    name: str
    make: Maker
    description: str


def problem_id(family: str, seed: int, difficulty: int | None, index: int, text: str) -> str:
    """Stable id: family, seed, difficulty choice, position and text hashed together."""
    key = f"{family}|{seed}|{difficulty or 'mix'}|{index}|{text}"
    return f"{family}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def number(value: Fraction | int) -> str:
    """The canonical answer text of an exact number ("12", "2.5")."""
    return format_number(value)


def is_terminating(value: Fraction, max_decimals: int = 4) -> bool:
    """True when `value` is written exactly with at most `max_decimals` decimal places."""
    return (Fraction(value) * 10**max_decimals).denominator == 1


# Prints a Fraction `value` the way `number` writes it (terminating decimals only).
PRINT_NUMBER = "print(value.numerator if value.denominator == 1 else float(value))"


def signed_term(coef: int, var: str, first: bool) -> str:
    """One term of a linear expression: "3x", "- y", "+ 2z" (empty for a zero coefficient)."""
    if coef == 0:
        return ""
    mag = "" if abs(coef) == 1 and var else str(abs(coef))
    if first:
        return f"{'-' if coef < 0 else ''}{mag}{var}"
    return f"{'-' if coef < 0 else '+'} {mag}{var}"


def linear_expr(coefs: list[int], names: list[str], const: int = 0) -> str:
    """ "2x + 3y - 1" from coefficients, variable names and a constant term."""
    parts: list[str] = []
    for c, v in zip(coefs, names):
        term = signed_term(c, v, first=not parts)
        if term:
            parts.append(term)
    if const or not parts:
        parts.append(signed_term(const, "", first=not parts) or "0")
    return " ".join(parts)


NAMES = (
    "Maya", "Liam", "Noor", "Tomas", "Aiko", "Priya", "Jonah", "Elena", "Kwame", "Sofia", "Ravi",
    "Hana", "Diego", "Ingrid", "Omar", "Lucia", "Mateo", "Yara", "Felix", "Zara", "Arjun", "Mei",
)
