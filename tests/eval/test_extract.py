"""Final-answer extraction on messy model text."""

import pytest

from agentrt.eval.extract import (
    extract_answer,
    extract_boxed,
    extract_expression,
    extract_hash,
    extract_last_number,
    extract_option,
    extract_phrase,
)


def test_boxed_keeps_nested_braces_and_takes_the_last():
    text = r"First \boxed{1}. Then the result is $\boxed{\frac{\sqrt{3}}{2}}$ indeed."
    assert extract_boxed(text) == r"\frac{\sqrt{3}}{2}"
    assert extract_boxed(r"so \boxed 5 it is") == "5"
    assert extract_boxed("no box here") is None
    assert extract_boxed(r"broken \boxed{1 + {2}") is None


def test_hash_takes_the_last_marker_line():
    text = "Step 1: 3 * 4 = 12\n#### 12\nWait, I made an error.\n#### 1,234 dollars\n"
    assert extract_hash(text) == "1,234 dollars"
    assert extract_hash("nothing") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("so the answer is: $5$. I hope it is correct.", "5"),
        ("**Final Answer:** 3.5", "3.5"),
        ("Answer: (B) because the rest are wrong", "(B) because the rest are wrong"),
        ("Final answer: The final answer is $\\boxed{7}$. I hope it is correct.", "7"),
        ("first answer: 1\nlater the answer is 2", "2"),
    ],
)
def test_phrase(text, expected):
    assert extract_phrase(text) == expected


def test_phrase_absent_or_empty():
    assert extract_phrase("I computed 5 and 6.") is None
    assert extract_phrase("The answer is\n") is None


def test_last_number_handles_commas_money_and_percent():
    assert extract_last_number("She paid $1,234.50 for 3 items") == "3"
    assert extract_last_number("total: $1,234.50") == "1,234.50"
    assert extract_last_number("a rise of 50%.") == "50"
    assert extract_last_number("it is -7") == "-7"
    assert extract_last_number("ratio 3/4") == "3/4"
    assert extract_last_number("no digits") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(A)", "(A)"),
        ("B", "(B)"),
        ("C.", "(C)"),
        ("Let's think. (A) is wrong, (C) fits. So the answer is (C).", "(C)"),
        ("Answer: D", "(D)"),
        ("The best choice is (E) Monday", "(E)"),
        ("I cannot tell", None),
    ],
)
def test_option(text, expected):
    assert extract_option(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Answer: (10 - 4) * (13 - 9) = 24", "(10 - 4) * (13 - 9)"),
        ("13 - 9 = 4 (left: 4 4 10)\n10 - 4 = 6 (left: 4 6)\n4 * 6 = 24\nAnswer: (13 - 9) * (10 - 4) = 24",
         "(13 - 9) * (10 - 4)"),
        ("We get 6 × 4 = 24, i.e. (10 − 4) × (13 − 9) = 24.", "(10 - 4) * (13 - 9)"),
        ("The expression is \\boxed{8 / (3 - 8 / 3)}", "8 / (3 - 8 / 3)"),
        ("no expression", None),
    ],
)
def test_expression(text, expected):
    assert extract_expression(text) == expected


def test_extract_answer_numeric_prefers_markers_then_last_number():
    assert extract_answer("3 * 4 = 12 apples\n#### 12", "numeric") == "12"
    assert extract_answer("The answer is 18 dollars.", "numeric") == "18"
    assert extract_answer("So she makes 9 * 2 = 18 per day", "numeric") == "18"
    assert extract_answer("The answer is $1,234.", "numeric") == "$1,234"
    assert extract_answer("", "numeric") == ""
    assert extract_answer("no numbers at all", "numeric") == ""


def test_extract_answer_math_bbh_game24_exact():
    assert extract_answer(r"Thus $x = \boxed{\frac{1}{2}}$.", "math") == r"\frac{1}{2}"
    assert extract_answer("Final answer: 3\\sqrt{13}", "math") == "3\\sqrt{13}"
    assert extract_answer("3\\sqrt{13}", "math") == "3\\sqrt{13}"  # an already extracted answer stays whole
    assert extract_answer("$\\frac{1}{2}$", "math") == "\\frac{1}{2}"
    assert extract_answer("We add 2 and 3.\nSo we get 5 in the end", "math") == "5"
    assert extract_answer("Reasoning...\nSo the answer is (B).", "bbh") == "(B)"
    assert extract_answer("True", "bbh") == "True"
    assert extract_answer("Long reasoning about it.\nWe conclude that\n(C) seems right here", "bbh") == "(C)"
    assert extract_answer("Answer: 4 * (10 - 4) = 24", "game24") == "4 * (10 - 4)"
    assert extract_answer("blah\nEvelyn", "exact") == "Evelyn"
    assert extract_answer("   ", "exact") == ""
