"""LaTeX normalization, simple numeric forms and sympy syntax."""

from fractions import Fraction

import pytest

from agentrt.eval.latex import math_number, normalize_math, split_bracketed, to_sympy_syntax


@pytest.mark.parametrize(
    ("raw", "norm"),
    [
        (r"\boxed{\dfrac{1}{2}}", r"\frac{1}{2}"),
        (r"$x = 5$", "5"),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})"),
        (r"\text{Evelyn}", "evelyn"),
        (r"145^\circ", "145"),
        (r"30^{\circ}", "30"),
        (r"12\text{ cm}", "12"),
        ("5 units", "5"),
        (r"10{,}000", "10000"),
        ("1,000,000", "1000000"),
        (r"\$36", "36"),
        (r"\frac12", r"\frac{1}{2}"),
        (r"3\sqrt2", r"3\sqrt{2}"),
        (".5", "0.5"),
        ("50\\%", "50"),
        ("y = -2x", "-2x"),
        ("(6,31,-1)", "(6,31,-1)"),
    ],
)
def test_normalize_math(raw, norm):
    assert normalize_math(raw) == norm


def test_math_number():
    assert math_number(r"\frac{3}{4}") == Fraction(3, 4)
    assert math_number(r"-\frac{24}{25}") == Fraction(-24, 25)
    assert math_number(r"1\frac{4}{5}") == Fraction(9, 5)
    assert math_number("0.0000672") == Fraction("0.0000672")
    assert math_number(r"\frac{1}{0}") is None
    assert math_number(r"3\sqrt{13}") is None


def test_split_bracketed():
    assert split_bracketed("(1,2)") == ("(", ["1", "2"], ")")
    assert split_bracketed("3,5,7") == ("", ["3", "5", "7"], "")
    assert split_bracketed(r"(0,9)\cup(9,36)") == ("", [r"(0,9)\cup(9,36)"], "")
    assert split_bracketed(r"(3,\frac{1}{2})") == ("(", ["3", r"\frac{1}{2}"], ")")


@pytest.mark.parametrize(
    ("norm", "sym"),
    [
        (r"3\sqrt{13}", "3*sqrt(13)"),
        (r"\frac{\pi}{2}", "((pi)/(2))"),
        (r"\frac{\frac{1}{2}}{3}", "((((1)/(2)))/(3))"),
        (r"\sqrt[3]{8}", "root((8),(3))"),
        ("x^2-1", "x**2-1"),
        ("(x-1)(x+1)", "(x-1)*(x+1)"),
        (r"2\cdot3", "2*3"),
        (r"\infty", "oo"),
    ],
)
def test_to_sympy_syntax(norm, sym):
    assert to_sympy_syntax(norm) == sym
