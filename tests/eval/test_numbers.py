"""Exact number parsing and tolerance comparison."""

from fractions import Fraction

import pytest

from agentrt.eval.numbers import format_number, numbers_close, parse_number


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", Fraction(42)), ("1,234", Fraction(1234)), ("$5", Fraction(5)), ("-$5", Fraction(-5)),
        ("50%", Fraction(50)), ("3/4", Fraction(3, 4)), ("-2.0", Fraction(-2)), (".5", Fraction(1, 2)),
        ("\\frac{1}{2}", Fraction(1, 2)), ("-\\dfrac{3}{4}", Fraction(-3, 4)), ("1e3", Fraction(1000)),
        ("42.", Fraction(42)), ("\u22127", Fraction(-7)), (" 12 ", Fraction(12)), ("1,234.5", Fraction(2469, 2)),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "abc", "5 apples", "1,2,3", "1/0", "12,34", "--5", "3 4", None, "1" * 300])
def test_parse_number_rejects(text):
    assert parse_number(text) is None


def test_numbers_close():
    assert numbers_close(Fraction(1, 3), 0.3333333333)
    assert not numbers_close(Fraction(1, 3), 0.333)
    assert numbers_close(0, 1e-10)
    assert not numbers_close(0, 1e-8)
    assert numbers_close(10**12, 10**12 + 1)


def test_format_number():
    assert format_number(Fraction(12)) == "12"
    assert format_number(Fraction(-5, 2)) == "-2.5"
    assert format_number(Fraction(1, 8)) == "0.125"
    assert format_number(Fraction(1, 3)) == "1/3"
