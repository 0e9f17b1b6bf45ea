import pytest

from agentrt.workflows.answers import extract_final_answer, parse_json_object, parse_verdict


@pytest.mark.parametrize(
    "text,expected",
    [
        ("17*23 = 391, plus 5 is 396.\nFinal answer: 396", "396"),
        ("Final Answer: **42**.", "42"),
        ("first try\nFinal answer: 3\nwait, recheck\nFinal answer: 4", "4"),
        ("so we get \\boxed{\\frac{1}{2}} in the end", "\\frac{1}{2}"),
        ("Thus the answer is (B).", "(B)"),
        ("some reasoning\n\n 12 ", "12"),
        ("", ""),
        ("Final answer: $3.5$", "3.5"),
    ],
)
def test_extract_final_answer(text, expected):
    assert extract_final_answer(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"verdict": "yes", "reason": "ok"}', "yes"),
        ('```json\n{"reason": "bad", "verdict": "NO"}\n```', "no"),
        ("The math checks out.\nVerdict: yes", "yes"),
        ("Verdict: **incorrect**", "no"),
        ("I am not sure at all", "unknown"),
        ('{"verdict": "maybe"}', "unknown"),
    ],
)
def test_parse_verdict(text, expected):
    assert parse_verdict(text) == expected


def test_parse_json_object_skips_noise():
    assert parse_json_object('noise {not json} then {"a": [1, 2]} tail') == {"a": [1, 2]}
    assert parse_json_object("no object here") is None
