"""Normalizing LaTeX math answers (MATH style) for comparison, and turning them into sympy syntax.

`normalize_math` strips what does not change an answer's value: `$`, `\\boxed`, `\\text{}`,
`\\left`/`\\right`, spacing commands, degree signs, percent signs, unit words, a leading
"x =" and thousands separators. `math_number` reads the simple numeric forms exactly
(integers, decimals, fractions, `\\frac`, mixed numbers). `to_sympy_syntax` rewrites the rest
into plain sympy input for the symbolic check, which runs in the sandboxed sympy tool, never here.
Nothing in this module evaluates model text.
"""

from __future__ import annotations

import re
from fractions import Fraction

from agentrt.eval.numbers import parse_number

__all__ = ["normalize_math", "math_number", "to_sympy_syntax", "split_top_level"]

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
        depth, j = 1, m.end()
        while j < len(s) and depth:
            depth += (s[j] == "{") - (s[j] == "}")
            j += 1
        inner = s[m.end() : j - 1] if depth == 0 else s[m.end() :]
        s = s[: m.start()] + (inner if keep else "") + s[j:]


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


def split_top_level(norm: str) -> tuple[str, list[str], str]:
    """Split "(1,2)" into ("(", ["1", "2"], ")") at commas outside nested brackets.

    Returns the opening and closing bracket ("" when the whole text is not wrapped in one pair)
    and the parts (a single part when there is no top-level comma).
    """
    open_b = close_b = ""
    body = norm
    if len(norm) >= 2 and norm[0] in "([{" and norm[-1] in ")]}":
        inner = norm[1:-1]
        depth = 0
        wrapped = True
        for ch in inner:
            depth += (ch in "([{") - (ch in ")]}")
            if depth < 0:
                wrapped = False
                break
        if wrapped and depth == 0:
            open_b, close_b, body = norm[0], norm[-1], inner
    parts, depth, cur = [], 0, []
    for ch in body:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return open_b, parts, close_b


def _replace_frac(s: str) -> str:
    """\\frac{a}{b} -> ((a)/(b)), innermost first, nested braces respected."""
    while True:
        m = re.search(r"\\frac\s*\{", s)
        if not m:
            return s
        num_end = _match_brace(s, m.end() - 1)
        if num_end < 0 or num_end + 1 >= len(s) or s[num_end + 1] != "{":
            return s.replace("\\frac", "", 1)
        den_end = _match_brace(s, num_end + 1)
        if den_end < 0:
            return s.replace("\\frac", "", 1)
        num, den = s[m.end() : num_end], s[num_end + 2 : den_end]
        s = s[: m.start()] + f"(({num})/({den}))" + s[den_end + 1 :]


def _replace_nth_root(s: str) -> str:
    """\\sqrt[n]{x} -> root((x),(n))."""
    while True:
        m = re.search(r"\\sqrt\s*\[([^\]]+)\]\s*\{", s)
        if not m:
            return s
        end = _match_brace(s, m.end() - 1)
        if end < 0:
            return s
        s = s[: m.start()] + f"root(({s[m.end():end]}),({m.group(1)}))" + s[end + 1 :]


def _match_brace(s: str, open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(s)):
        depth += (s[j] == "{") - (s[j] == "}")
        if depth == 0:
            return j
    return -1


def to_sympy_syntax(norm: str) -> str:
    """Rewrite a normalized LaTeX answer as plain sympy input ("3\\sqrt{13}" -> "3*sqrt(13)")."""
    s = _replace_nth_root(_replace_frac(norm))
    s = s.replace("\\sqrt", "sqrt").replace("\\pi", "pi").replace("\\infty", "oo")
    s = s.replace("\\cdot", "*").replace("\\times", "*").replace("\\div", "/")
    s = re.sub(r"\\(sin|cos|tan|log|ln|exp|sec|csc|cot)\b", r"\1", s).replace("ln(", "log(")
    s = s.replace("{", "(").replace("}", ")").replace("^", "**")
    s = s.replace("\\", "")
    s = re.sub(r"(?<=\w) (?=\w)", "*", s)
    s = re.sub(r"(\d)\s*([a-zA-Z(])", r"\1*\2", s)
    s = re.sub(r"\)\s*([\w(])", r")*\1", s)
    return s
