"""The numbers a problem gives, as the compact-numbers profile lists them for tool calls."""

from __future__ import annotations

import pytest

from agentrt.workflows.slow.numbers import MAX_LISTED, listed_numbers


@pytest.mark.parametrize("text, listed", [
    ("I have $50 and spend $18.75 on lunch.", ["50", "18.75"]),
    ("What is the total of 1,250 and 3,475?", ["1250", "3475"]),  # not 1, 250, 3, 475
    ("There are 24 students and 3/8 of them wear glasses.", ["24", "3/8"]),
    ("Out of 250 people surveyed, 40% said yes.", ["250", "40"]),
    ("Milk rose from $2.50 to $3.00.", ["2.5", "3"]),  # as a program writes them
    ("Three friends split a $96 fare; twenty-five more came.", ["3", "96", "25"]),
    ("A dozen eggs and twice as many, half of a third of 90.", ["12", "2", "3", "90"]),
    ("One boy ate a pie in one hour.", []),  # "one" and "a" are articles far more than numbers
    ("It costs 5 dollars, then 5 more, then five again.", ["5"]),  # each value once
    ("The 2nd and 3rd runners; room B12; 1/0 odds.", []),  # ordinals, codes, zero denominators
    ("Prices 1,000,000 and 12,5 and 7.", ["1000000", "12", "5", "7"]),
])
def test_listed_numbers(text, listed):
    assert listed_numbers(text) == listed


def test_at_most_the_first_numbers_are_listed():
    text = " ".join(str(n) for n in range(1, 40))
    assert listed_numbers(text) == [str(n) for n in range(1, MAX_LISTED + 1)]
    assert listed_numbers(text, limit=3) == ["1", "2", "3"]
