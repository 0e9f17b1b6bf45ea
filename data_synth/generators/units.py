"""Unit conversions and rates, with exact decimal answers.

Level 1 converts one quantity (km to m, hours to minutes, kg to g, ...); level 2 is a rate
(average speed, flow over a time in other units, unit price); level 3 converts a compound unit
(km/h to m/s, m/s to km/h, liters per minute to milliliters per second, ...). Inputs are drawn so
every answer has at most four decimals; values are exact fractions throughout.
"""

from __future__ import annotations

import random
from fractions import Fraction

from agentrt.data_synth.generators.base import PRINT_NUMBER, Draft, is_terminating, number

__all__ = ["make"]

# (from unit, to unit, factor: 1 from-unit = factor to-units)
_CONVERSIONS = (
    ("kilometers", "meters", Fraction(1000)), ("meters", "centimeters", Fraction(100)),
    ("centimeters", "millimeters", Fraction(10)), ("meters", "kilometers", Fraction(1, 1000)),
    ("hours", "minutes", Fraction(60)), ("minutes", "seconds", Fraction(60)),
    ("minutes", "hours", Fraction(1, 60)), ("kilograms", "grams", Fraction(1000)),
    ("grams", "kilograms", Fraction(1, 1000)), ("liters", "milliliters", Fraction(1000)),
    ("milliliters", "liters", Fraction(1, 1000)), ("days", "hours", Fraction(24)),
)
# (text template, factor applied to the given number)
_COMPOUND = (
    ("Convert {v} km/h to meters per second.", Fraction(1000, 3600)),
    ("Convert {v} m/s to kilometers per hour.", Fraction(3600, 1000)),
    ("A tap runs at {v} liters per minute. How many milliliters is that per second?", Fraction(1000, 60)),
    ("A machine makes {v} parts per hour. How many parts is that per minute?", Fraction(1, 60)),
    ("A cyclist rides {v} meters per minute. What is that in kilometers per hour?", Fraction(60, 1000)),
    ("A leak drips {v} milliliters per second. How many liters is that per hour?", Fraction(3600, 1000)),
    ("A pipe carries {v} liters per second. How many cubic meters is that per hour?", Fraction(3600, 1000)),
)


def _given(rng: random.Random) -> Fraction:
    """A value as people write it: a whole number, or one with a half or a quarter."""
    whole = rng.randint(1, 250)
    return whole + rng.choice((Fraction(0), Fraction(0), Fraction(1, 2), Fraction(1, 4), Fraction(3, 4)))


def _program(lines: list[str]) -> str:
    return "\n".join(["from fractions import Fraction", *lines, PRINT_NUMBER])


def _level1(rng: random.Random) -> tuple[str, Fraction, str]:
    src, dst, factor = rng.choice(_CONVERSIONS)
    v = _given(rng)
    text = f"Convert {number(v)} {src} to {dst}."
    return text, v * factor, _program([f'value = Fraction("{number(v)}") * Fraction("{factor}")'])


def _level2(rng: random.Random) -> tuple[str, Fraction, str]:
    kind = rng.randrange(3)
    if kind == 0:
        hours = rng.choice((Fraction(1, 2), Fraction(3, 2), Fraction(2), Fraction(5, 2), Fraction(3), Fraction(4)))
        speed = rng.randint(8, 30) * 5
        dist = speed * hours
        return (f"A car covers {number(dist)} km in {number(hours)} hours. What is its average speed in km/h?",
                Fraction(speed), _program([f'value = Fraction("{number(dist)}") / Fraction("{number(hours)}")']))
    if kind == 1:
        rate, hours = rng.randint(2, 40), rng.randint(1, 6)
        return (f"A pump moves {rate} liters per minute. How many liters does it move in {hours} hours?",
                Fraction(rate * 60 * hours), _program([f"value = Fraction({rate}) * 60 * {hours}"]))
    qty, unit_price = rng.randint(2, 12), Fraction(rng.randint(2, 40), 4)
    total = qty * unit_price
    return (f"{qty} kilograms of apples cost ${number(total)}. What is the price of one kilogram in dollars?",
            unit_price, _program([f'value = Fraction("{number(total)}") / {qty}']))


def _level3(rng: random.Random) -> tuple[str, Fraction, str]:
    template, factor = rng.choice(_COMPOUND)
    for _ in range(100):
        v = Fraction(rng.randint(1, 400))
        if is_terminating(v * factor):
            break
    text = template.format(v=number(v))
    line = f"value = Fraction({number(v)}) * Fraction({factor.numerator}, {factor.denominator})"
    return text, v * factor, _program([line])


def make(rng: random.Random, level: int) -> Draft:
    """Draw one conversion (level 1), rate (level 2) or compound-unit (level 3) problem."""
    for _ in range(100):
        text, value, program = (_level1, _level2, _level3)[level - 1](rng)
        if is_terminating(value):
            break
    else:
        raise RuntimeError("no unit problem with a terminating answer found")  # internal invariant
    return Draft(text=text, answer=number(value), grader="numeric", program=program)
