"""Reading numbers the way people and models write them, exactly, and comparing them with a tolerance.

`parse_number` turns "1,234", "$5", "50%", "3/4", "-2.0", "\\frac{3}{4}" or "1e3" into an exact
`Fraction`; anything that is not a single plain number gives None. Percentages read as the
number before the sign ("50%" -> 50), because benchmark answers state the percent value.
This module knows nothing about problems or graders; it is the arithmetic under them.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["parse_number", "numbers_close", "format_number", "REL_TOL", "ABS_TOL"]

REL_TOL = 1e-6
ABS_TOL = 1e-9

_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_RATIO = re.compile(r"([+-]?\d+)\s*/\s*(\d+)")
_LATEX_FRAC = re.compile(r"([+-]?)\\[dt]?frac\s*\{\s*([+-]?\d+)\s*\}\s*\{\s*(\d+)\s*\}")
_CURRENCY = ("\\$", "$", "€", "£", "¥")
_MINUS = {"\u2212": "-", "\u2013": "-", "\u2014": "-"}


def _strip_decorations(text: str) -> str:
    s = text.strip()
    for bad, good in _MINUS.items():
        s = s.replace(bad, good)
    # A trailing sentence period ("42.") but not a decimal point in "4.5".
    s = re.sub(r"(?<=\d)\.$", "", s).strip()
    s = s.removesuffix("\\%").removesuffix("%").strip()
    sign = ""
    if s[:1] in "+-":
        sign, s = s[:1], s[1:].strip()
    for cur in _CURRENCY:
        if s.startswith(cur):
            s = s[len(cur):].strip()
            break
    return sign + s


def parse_number(text: str) -> Fraction | None:
    """Parse one number exactly.

    Args:
        text: e.g. "1,234", "$5", "-$5", "50%", "3/4", "-2.0", "\\frac{1}{2}", ".5", "1e-3".

    Returns:
        The exact value, or None when `text` is not a single number (e.g. "5 apples", "1,2,3").

    Example:
        >>> parse_number("$1,234.50")
        Fraction(2469, 2)
    """
    if not isinstance(text, str):
        return None
    s = _strip_decorations(text)
    if not s or len(s) > 200:
        return None
    if _THOUSANDS.fullmatch(s):
        s = s.replace(",", "")
    if _DECIMAL.fullmatch(s):
        try:
            return Fraction(s)
        except (ValueError, ZeroDivisionError, OverflowError):
            return None
    m = _RATIO.fullmatch(s)
    if m:
        den = int(m.group(2))
        return Fraction(int(m.group(1)), den) if den else None
    m = _LATEX_FRAC.fullmatch(s)
    if m:
        den = int(m.group(3))
        if not den:
            return None
        value = Fraction(int(m.group(2)), den)
        return -value if m.group(1) == "-" else value
    return None


def numbers_close(a: Fraction | float, b: Fraction | float, rel: float = REL_TOL, abs_tol: float = ABS_TOL) -> bool:
    """True when `a` and `b` agree within a relative or absolute tolerance (exact for equal fractions)."""
    if a == b:
        return True
    diff = abs(Fraction(a) - Fraction(b))
    scale = max(abs(Fraction(a)), abs(Fraction(b)))
    return diff <= Fraction(abs_tol) or diff <= Fraction(rel) * scale


def format_number(value: Fraction | int) -> str:
    """Canonical text of an exact number: "12", "-2.5"; a non-terminating fraction as "a/b"."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:
        return repr(float(value)) if abs(value) < 10**15 else str(value)
    return f"{value.numerator}/{value.denominator}"
