"""Safe exact arithmetic: only numbers, + - * /, parentheses."""

from fractions import Fraction

import pytest

from agentrt.core.errors import ParseError
from agentrt.eval.arith import evaluate_arithmetic


def test_exact_values_and_numbers_used():
    assert evaluate_arithmetic("8 / (3 - 8 / 3)") == (Fraction(24), [8, 3, 8, 3])
    assert evaluate_arithmetic("[2 × 3] ÷ 4 − 1") == (Fraction(1, 2), [2, 3, 4, 1])
    assert evaluate_arithmetic("-(1 - 5) * 6") == (Fraction(24), [1, 5, 6])


@pytest.mark.parametrize(
    "expr",
    ["2 ** 3", "abs(-3)", "x + 1", "1.5 * 2", "True + 1", "7 // 2", "7 % 2", "'a' * 3", "[1, 2]",
     "(lambda: 1)()", "1; 2", "", "-" * 80 + "1", "1 +" * 200, "1 < 2"],
)
def test_refuses_everything_else(expr):
    with pytest.raises(ParseError):
        evaluate_arithmetic(expr)


def test_division_by_zero():
    with pytest.raises(ZeroDivisionError):
        evaluate_arithmetic("1 / (2 - 2)")


def test_redundant_parentheses_are_fine():
    assert evaluate_arithmetic("(" * 40 + "24" + ")" * 40) == (Fraction(24), [24])
