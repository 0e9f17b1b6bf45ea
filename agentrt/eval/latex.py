"""Normalizing LaTeX math answers (MATH style) for comparison, and turning them into sympy syntax.

`normalize_math` strips what does not change an answer's value: `$`, `\\boxed`, `\\text{}`,
`\\left`/`\\right`, spacing commands, degree signs, percent signs, unit words, a leading
"x =" and thousands separators. `math_number` reads the simple numeric forms exactly
(integers, decimals, fractions, `\\frac`, mixed numbers). `split_bracketed` cuts tuples, intervals
and lists into their parts. The rest goes to the symbolic check, which runs in the sandboxed
sympy tool, never here; the LaTeX rewriting it needs lives with that tool (`agentrt.tools.latex`,
whose `to_sympy_syntax` is re-exported here).
Nothing in this module evaluates model text.
"""

from __future__ import annotations

import re
from fractions import Fraction

from agentrt.eval.numbers import parse_number
from agentrt.tools.latex import match_brace, split_top_level, to_sympy_syntax

__all__ = ["normalize_math", "math_number", "split_bracketed", "to_sympy_syntax"]

_UNITS = (
    "units?|degrees?|cm|centimeters?|mm|millimeters?|meters?|km|kilometers?|inch(?:es)?|feet|foot"
    "|ft|yards?|miles?|mph|dollars?|cents?|hours?|minutes?|seconds?|days?|weeks?|years?"
    "|square|sq|cubic|pounds?|ounces?|grams?|kg|liters?|students?|people|ways"
)
_UNIT_TAIL = re.compile(rf"(?<=[\d}}])\s*(?:\\,)?\s*(?:{_UNITS})(?:\^\{{?\d\}}?)?\s*(?:{_UNITS})?$", re.I)
_TEXT_CMD = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~")
_VAR_PREFIX = re.compile(r"^[a-zA-Z]\s*(?:=|\\in)\s*(?=[^=]+$)")


def _unwrap_command(s: str, pattern: re.Pattern[str], keep: bool = True) -> str:
    """Replace every `\\cmd{content}` matched by `pattern` with its content (or nothing)."""
    while True:
        m = pattern.search(s)
        if not m:
            return s
        close = match_brace(s, m.end() - 1)
        inner, rest = (s[m.end() : close], s[close + 1 :]) if close >= 0 else (s[m.end() :], "")
        s = s[: m.start()] + (inner if keep else "") + rest


def _fix_fracs(s: str) -> str:
    """\\dfrac/\\tfrac -> \\frac, and \\frac12 -> \\frac{1}{2}; \\sqrt2 -> \\sqrt{2}."""
    s = re.sub(r"\\[dt]frac", r"\\frac", s)
    s = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*\{([^{}]*)\}\s*(\d)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*(\d)\s*\{", r"\\frac{\1}{", s)
    return re.sub(r"\\sqrt\s*(\d+|[a-zA-Z])", r"\\sqrt{\1}", s)


def _squeeze_spaces(s: str) -> str:
    """Drop whitespace, except one space between letters ("\\pi r" must not become "\\pir")."""
    s = re.sub(r"\s+", " ", s).strip()
    return re.sub(r"(?<![A-Za-z]) | (?![A-Za-z])", "", s)


def normalize_math(answer: str) -> str:
    """Canonical text of a LaTeX answer: "\\boxed{\\dfrac{1}{2}}" -> "\\frac{1}{2}", "x = 5" -> "5".

    Whitespace is removed (except between two letters), and purely alphabetic answers are lowercased.
    """
    s = answer.strip()
    s = _unwrap_command(s, re.compile(r"\\(?:boxed|fbox)\s*\{"))
    s = s.replace("\\$", "").replace("$", "").replace("\\(", "").replace("\\)", "")
    s = s.replace("\\[", "").replace("\\]", "")
    s = re.sub(r"\\left\b|\\right\b|\\big+l?r?\b|\\Big+l?r?\b", "", s)
    s = _unwrap_command(s, _TEXT_CMD)
    s = _SPACING.sub(" ", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|°|\\circ|\\degree", "", s)
    s = s.replace("\\%", "").replace("%", "").replace("{,}", "")
    s = _fix_fracs(s)
    s = s.strip().removesuffix(".").strip()
    s = _VAR_PREFIX.sub("", s)
    for _ in range(2):
        s = _UNIT_TAIL.sub("", s).strip()
    if re.fullmatch(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s.replace(" ", "")):
        s = s.replace(",", "")
    s = _squeeze_spaces(s)
    s = re.sub(r"(?<![\d])\.(\d)", r"0.\1", s)
    if re.fullmatch(r"[A-Za-z]+", s):
        s = s.lower()
    return s


def math_number(norm: str) -> Fraction | None:
    """The exact value of a normalized answer in a simple numeric form, or None.

    Reads what `parse_number` reads plus "\\frac{a}{b}" with signs and mixed numbers "1\\frac{4}{5}".
    """
    value = parse_number(norm)
    if value is not None:
        return value
    m = re.fullmatch(r"([+-]?)\\frac\{([+-]?\d+(?:\.\d+)?)\}\{(\d+(?:\.\d+)?)\}", norm)
    if m:
        den = Fraction(m.group(3))
        if den == 0:
            return None
        value = Fraction(m.group(2)) / den
        return -value if m.group(1) == "-" else value
    m = re.fullmatch(r"([+-]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}", norm)
    if m and int(m.group(4)) and int(m.group(3)) < int(m.group(4)):
        value = int(m.group(2)) + Fraction(int(m.group(3)), int(m.group(4)))
        return -value if m.group(1) == "-" else value
    return None


def split_bracketed(norm: str) -> tuple[str, list[str], str]:
    """Split "(1,2)" into ("(", ["1", "2"], ")") at commas outside nested brackets.

    Returns the opening and closing bracket ("" when the whole text is not wrapped in one pair)
    and the parts (a single part when there is no top-level comma).
    """
    if len(norm) >= 2 and norm[0] in "([{" and norm[-1] in ")]}":
        inner = norm[1:-1]
        depth = 0
        for ch in inner:
            depth += (ch in "([{") - (ch in ")]}")
            if depth < 0:
                break
        if depth == 0:
            return norm[0], split_top_level(inner), norm[-1]
    return "", split_top_level(norm), ""
