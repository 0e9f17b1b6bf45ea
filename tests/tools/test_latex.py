"""LaTeX to parser text: a pure string rewrite (nothing is evaluated)."""

from __future__ import annotations

import pytest

from agentrt.tools.latex import latex_to_text, split_top_level


@pytest.mark.parametrize("src,expected", [
    (r"\frac{1}{2}", "((1)/(2))"),
    (r"\dfrac{a}{b}", "((a)/(b))"),
    (r"\frac12", "((1)/(2))"),
    (r"\sqrt{2}", "sqrt(2)"),
    (r"\sqrt[3]{8}", "((8)**(1/(3)))"),
    (r"x^{2}", "x**(2)"),
    ("x^30", "x**(30)"),
    ("2^(n+1)", "2**((n+1))"),
    ("x^2y", "x**(2)y"),
    (r"2\cdot 3", "2 * 3"),
    (r"\left(1, 2\right)", "(1, 2 )"),
    (r"5\text{ cm}", "5"),
    (r"\text{yes}", "yes"),
    (r"1{,}000", "1000"),
    ("1,000,000", "1000000"),
    (r"30^\circ", "30"),
    (r"\boxed{7}", "(7)"),
    (r"x \le 3", "x <= 3"),
    (r"\{1, 2\}", "{1, 2}"),
    (r"x_{1}", "x_1"),
    (r"$\pi$", "pi"),
])
def test_latex_to_text(src, expected):
    assert latex_to_text(src) == expected


def test_tuples_keep_their_commas():
    assert latex_to_text("(1,000, 2)") == "(1,000, 2)"
    assert split_top_level("(1, 2), [3, 4], 5") == ["(1, 2)", "[3, 4]", "5"]
