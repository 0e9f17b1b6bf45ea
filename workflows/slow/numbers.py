"""The numbers a problem gives, listed as a python program would write them.

A profile with `list_numbers` shows this list in its tool-call prompts (`Numbers: 50, 18.75`).
A 135M model copies numbers badly ("1,250" becomes `1 + 250`, "$2.40" becomes `240`) and cannot
tell a one-step question from a several-step one; a list it can copy from and count gives it
both signals in a form it reads without parsing the wording.

Listed: numbers written with digits (thousands separators dropped, "3/8" kept as one fraction,
"40%" as 40), then counting words ("three", "twenty-five", "a dozen") and the multipliers and
fractions that stand for a number ("twice", "half", "a quarter"), each value once, in the
order the problem gives them. Not listed: "one" and "a" (nearly always an article, not a
quantity), ordinals written with digits ("2nd"), and numbers inside words. Known noise: "third"
and "quarter" are read as 3 and 4 also where they are ordinals or clock words ("the third
class", "a quarter past"); the shipped model was trained with the list as it is, so a change
here is a change to its prompts.

This module knows only text; the prompt line is in the compact templates.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["listed_numbers", "MAX_LISTED"]

#: At most this many numbers are listed (a problem with more is shown the first ones).
MAX_LISTED = 12

_UNITS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9}
_TEENS = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
          "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}
# Words that stand for a number in a calculation: what a program divides or multiplies by.
_OTHER = {"dozen": 12, "hundred": 100, "thousand": 1000, "twice": 2, "double": 2, "triple": 3,
          "half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4}

_WORD = "|".join(sorted([*_UNITS, *_TEENS, *_TENS, *_OTHER], key=len, reverse=True))
_TOKEN = re.compile(
    r"(?P<frac>(?<![\w.])\d+/\d+(?![\w/]))"
    r"|(?P<num>(?<![\w.])(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?(?!st\b|nd\b|rd\b|th\b))"
    rf"|(?P<word>\b(?:{'|'.join(_TENS)})-(?:{'|'.join(_UNITS)})\b|\b(?:{_WORD})\b)",
    re.IGNORECASE)


def _word_value(word: str) -> int:
    word = word.lower()
    if "-" in word:
        tens, unit = word.split("-")
        return _TENS[tens] + _UNITS[unit]
    return {**_UNITS, **_TEENS, **_TENS, **_OTHER}[word]


def _written(value: Fraction) -> str:
    """A value as a program writes it: 1250, 18.75, 3/8."""
    if value.denominator == 1:
        return str(value.numerator)
    decimal = float(value)
    if Fraction(repr(decimal)) == value:
        return repr(decimal)
    return f"{value.numerator}/{value.denominator}"


def listed_numbers(problem: str, limit: int = MAX_LISTED) -> list[str]:
    """The problem's numbers, each value once, in order, as a program writes them.

    Example:
        >>> listed_numbers("I have $1,250 and spend a third of it and twenty-five more.")
        ['1250', '3', '25']
        >>> listed_numbers("3/8 of 24 students; 40% of 250")
        ['3/8', '24', '40', '250']
    """
    seen: dict[Fraction, str] = {}
    for m in _TOKEN.finditer(problem):
        if m.group("frac"):
            num, den = m.group("frac").split("/")
            if int(den) == 0:
                continue
            value, shown = Fraction(int(num), int(den)), m.group("frac")
        elif m.group("num"):
            value = Fraction(m.group("num").replace(",", ""))
            shown = _written(value)
        else:
            value = Fraction(_word_value(m.group("word")))
            shown = str(value)
        if value not in seen:
            seen[value] = shown
            if len(seen) == limit:
                break
    return list(seen.values())
