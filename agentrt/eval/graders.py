"""Graders: does a predicted final answer solve a problem? One registry, looked up by name.

Each grader implements `Grader.grade(predicted, problem) -> Grade`, where `predicted` is an
already extracted final answer (see `agentrt.eval.extract`) and `problem.grader` names the
grader. Registered: `numeric`, `exact`, `bbh`, `game24`, `math`, `equation` (assignments such as
"x=2, y=-1") and `roots` (a set of numbers such as "-3, 2"). Graders never raise on bad
answers: a malformed answer is simply wrong, and the reason says why. This module does not
extract answers from free text, run models, or evaluate model text with `eval`.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from agentrt.core.errors import ConfigError, ParseError
from agentrt.eval.arith import evaluate_arithmetic, normalize_operators
from agentrt.eval.extract import extract_option
from agentrt.eval.math_equiv import math_equivalent
from agentrt.eval.numbers import format_number, numbers_close, parse_number
from agentrt.core.types import Problem

__all__ = ["Grade", "Grader", "GRADERS", "get_grader", "grade"]


class Grade(BaseModel):
    """The verdict on one answer: correct or not, why, and the answer as the grader read it."""

    model_config = ConfigDict(frozen=True)

    correct: bool
    reason: str
    normalized: str = ""


@runtime_checkable
class Grader(Protocol):
    """Checks predicted final answers against a problem's reference answer."""

    name: str

    def grade(self, predicted: str, problem: Problem) -> Grade:
        """Grade one extracted answer; never raises for a malformed answer."""
        ...


def _squash(text: str) -> str:
    """Whitespace collapsed, case folded, surrounding quotes and a final period removed."""
    s = " ".join(str(text).split()).casefold()
    s = s.strip().strip("\"'`").strip()
    return s.removesuffix(".").strip()


class NumericGrader:
    """Numbers within rel 1e-6 / abs 1e-9; "1,234", "$5", "50%", "3/4", "-2.0", "5 apples" read."""

    name = "numeric"

    def grade(self, predicted: str, problem: Problem) -> Grade:
        ref = parse_number(problem.answer)
        if ref is None:
            return Grade(correct=False, reason=f"reference answer {problem.answer!r} is not a number")
        value, how = _read_number(predicted)
        if value is None:
            return Grade(correct=False, reason=f"no single number in {predicted[:60]!r}", normalized="")
        norm = format_number(value)
        if numbers_close(value, ref):
            return Grade(correct=True, reason=f"equals {format_number(ref)}{how}", normalized=norm)
        return Grade(correct=False, reason=f"{norm} != {format_number(ref)}", normalized=norm)


def _read_number(text: str) -> tuple[Fraction | None, str]:
    value = parse_number(text)
    if value is not None:
        return value, ""
    found = re.findall(r"[+-]?\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?%?", text)
    if len(found) == 1:
        return parse_number(found[0]), " (number read from text)"
    return None, ""


class ExactGrader:
    """String equality after collapsing whitespace and case."""

    name = "exact"

    def grade(self, predicted: str, problem: Problem) -> Grade:
        got, want = _squash(predicted), _squash(problem.answer)
        if got == want:
            return Grade(correct=True, reason="exact match", normalized=got)
        return Grade(correct=False, reason=f"{got!r} != {want!r}", normalized=got)


_OPTION_LINE = re.compile(r"^\s*\(([A-Z])\)\s*(.+?)\s*$", re.M)


def _option_letter(predicted: str, problem_text: str) -> str | None:
    """The option a BBH answer names: "(A)", "A", "(A) text", "answer is A", or the option text."""
    pred = predicted.strip()
    m = re.match(r"^\(([A-Z])\)", pred) or re.fullmatch(r"([A-Z])[).:]?", pred)
    if m:
        return m.group(1)
    wanted = _squash(pred)
    for letter, text in _OPTION_LINE.findall(problem_text):
        if _squash(text) == wanted:
            return letter
    found = extract_option(pred)
    return found[1] if found else None


class BBHGrader:
    """BIG-Bench Hard exact match with the usual answer formats.

    Option targets "(A)" accept "(A)", "A", "(A) text" and the option's text; dyck_languages
    compares without spaces, word_sorting compares the word sequence, numeric targets compare
    as numbers; everything else ("True", "valid", "Yes") compares case- and space-insensitively.
    """

    name = "bbh"

    def grade(self, predicted: str, problem: Problem) -> Grade:
        target = problem.answer.strip()
        task = str(problem.meta.get("task") or problem.family.removeprefix("bbh:"))
        if re.fullmatch(r"\([A-Z]\)", target):
            letter = _option_letter(predicted, problem.text)
            got = f"({letter})" if letter else _squash(predicted)
            ok = got == target
            return Grade(correct=ok, reason="option matches" if ok else f"{got} != {target}", normalized=got)
        if task == "dyck_languages":
            got, want = "".join(predicted.split()), "".join(target.split())
        elif task == "word_sorting":
            got = " ".join(re.split(r"[\s,]+", predicted.strip().casefold())).strip()
            want = " ".join(target.casefold().split())
        elif parse_number(target) is not None:
            return NumericGrader().grade(predicted, problem)
        else:
            got, want = _squash(predicted), _squash(target)
        ok = got == want
        return Grade(correct=ok, reason="exact match" if ok else f"{got!r} != {want!r}", normalized=got)


def _puzzle_numbers(problem: Problem) -> list[int] | None:
    nums = problem.meta.get("numbers")
    if isinstance(nums, list) and nums and all(isinstance(n, int) for n in nums):
        return nums
    m = re.search(r"numbers\s+((?:\d+[\s,]+){3,}\d+)", problem.text)
    return [int(x) for x in re.findall(r"\d+", m.group(1))] if m else None


class Game24Grader:
    """A Game of 24 expression: only the puzzle's numbers, each once, + - * / and parentheses, = 24.

    Parsed with `ast` and evaluated exactly with fractions; "= 24" at the end is accepted.
    """

    name = "game24"
    target = Fraction(24)

    def grade(self, predicted: str, problem: Problem) -> Grade:
        numbers = _puzzle_numbers(problem)
        if numbers is None:
            return Grade(correct=False, reason="problem does not state its numbers")
        expr = normalize_operators(predicted).strip().removesuffix(".")
        if "=" in expr:
            left, _, right = expr.partition("=")
            if right.strip() and parse_number(right) != self.target:
                return Grade(correct=False, reason=f"claims {right.strip()!r}, not 24", normalized=expr)
            expr = left.strip()
        try:
            value, used = evaluate_arithmetic(expr)
        except ParseError as e:
            return Grade(correct=False, reason=str(e), normalized=expr)
        except ZeroDivisionError:
            return Grade(correct=False, reason="division by zero", normalized=expr)
        if sorted(used) != sorted(numbers):
            return Grade(correct=False, reason=f"uses {sorted(used)}, puzzle has {sorted(numbers)}",
                         normalized=expr)
        if value != self.target:
            return Grade(correct=False, reason=f"equals {value}, not 24", normalized=expr)
        return Grade(correct=True, reason="uses each number once and equals 24", normalized=expr)


class MathGrader:
    """MATH answer equivalence: LaTeX normalized, fast string/number paths, then sandboxed sympy."""

    name = "math"

    def grade(self, predicted: str, problem: Problem) -> Grade:
        ok, why, norm = math_equivalent(predicted, problem.answer)
        return Grade(correct=ok, reason=why, normalized=norm)


_ASSIGN = re.compile(r"([a-zA-Z]\w*)\s*=\s*([^,;=]+?)\s*(?=$|[,;]|\band\b)")


def parse_assignments(text: str) -> dict[str, Fraction] | None:
    """Read "x=2, y=-1" (also "x = 2 and y = -1", "x=1/2") as {name: value}; None if unreadable."""
    s = normalize_operators(text).replace("$", "").strip().removesuffix(".")
    pairs = _ASSIGN.findall(s)
    if not pairs:
        return None
    out: dict[str, Fraction] = {}
    for name, raw in pairs:
        value = parse_number(raw)
        if value is None or (name in out and out[name] != value):
            return None
        out[name] = value
    return out


class EquationGrader:
    """Solutions of equations as assignments, compared as a set: "x=2, y=-1" == "y = -1, x = 2".

    A bare number is accepted for a single unknown; a tuple "(2, -1)" is read in the reference's
    variable order.
    """

    name = "equation"

    def grade(self, predicted: str, problem: Problem) -> Grade:
        want = parse_assignments(problem.answer)
        if want is None:
            return Grade(correct=False, reason=f"reference {problem.answer!r} is not a set of assignments")
        got = parse_assignments(predicted)
        if got is None:
            values = [parse_number(p) for p in re.split(r"[,;]", predicted.strip().strip("()"))]
            if len(values) == len(want) and all(v is not None for v in values):
                got = dict(zip(want, values))
        if got is None:
            return Grade(correct=False, reason=f"cannot read assignments from {predicted[:60]!r}")
        norm = ", ".join(f"{k}={format_number(v)}" for k, v in sorted(got.items()))
        if set(got) != set(want):
            return Grade(correct=False, reason=f"unknowns {sorted(got)} != {sorted(want)}", normalized=norm)
        wrong = [k for k in want if not numbers_close(got[k], want[k])]
        if wrong:
            return Grade(correct=False, reason=f"wrong value for {', '.join(wrong)}", normalized=norm)
        return Grade(correct=True, reason="all unknowns match", normalized=norm)


def parse_number_set(text: str) -> list[Fraction] | None:
    """Read "x = -3 or x = 2", "x=-3, x=2", "{-3, 2}" or "-3, 2" as sorted distinct numbers."""
    s = normalize_operators(text).replace("$", "").strip().removesuffix(".")
    s = re.sub(r"\b[a-zA-Z]\w*\s*=", " ", s).strip().strip("{}()").strip()
    parts = [p for p in re.split(r",|;|\bor\b|\band\b", s) if p.strip()]
    values = [parse_number(p) for p in parts]
    if not values or any(v is None for v in values):
        return None
    return sorted(set(values))


class RootsGrader:
    """A set of numbers (roots of an equation): order and repeats do not matter."""

    name = "roots"

    def grade(self, predicted: str, problem: Problem) -> Grade:
        want = parse_number_set(problem.answer)
        if want is None:
            return Grade(correct=False, reason=f"reference {problem.answer!r} is not a set of numbers")
        got = parse_number_set(predicted)
        if got is None:
            return Grade(correct=False, reason=f"cannot read numbers from {predicted[:60]!r}")
        norm = ", ".join(format_number(v) for v in got)
        ok = len(got) == len(want) and all(numbers_close(a, b) for a, b in zip(got, want))
        return Grade(correct=ok, reason="same set of roots" if ok else f"{norm} != {problem.answer}",
                     normalized=norm)


# name -> grader; adding a grader is one class plus one entry here.
GRADERS: dict[str, Grader] = {
    g.name: g
    for g in (NumericGrader(), ExactGrader(), BBHGrader(), Game24Grader(), MathGrader(),
              EquationGrader(), RootsGrader())
}


def get_grader(name: str) -> Grader:
    """The grader registered as `name`.

    Raises:
        ConfigError: unknown grader name (the message lists the choices).
    """
    grader = GRADERS.get(name)
    if grader is None:
        raise ConfigError(f"unknown grader {name!r}; choose one of: {', '.join(sorted(GRADERS))}")
    return grader


def grade(predicted: str, problem: Problem) -> Grade:
    """Grade `predicted` with the grader `problem.grader` names.

    Example:
        >>> from agentrt.core.types import Problem
        >>> grade("$1,234", Problem(id="p", text="?", answer="1234", grader="numeric")).correct
        True
    """
    if not isinstance(predicted, str):
        return Grade(correct=False, reason=f"answer is {type(predicted).__name__}, not text")
    return get_grader(problem.grader).grade(predicted, problem)
