"""Worked-solution files a user hands in with bad rows: a clear error naming the file and line,
or a drop counted in the report; never a traceback or a silently wrong problem."""

from __future__ import annotations

import json

import pytest

from agentrt.core.errors import InvalidInputError
from agentrt.data_synth import worked
from agentrt.data_synth.worked import RowFormat, compile_solution, load_worked, worked_problems

GOOD = {"question": "Tom has 3 apples and buys 4 more. How many now?",
        "answer": "3+4 = <<3+4=7>>7 apples.\n#### 7"}
LINE = json.dumps(GOOD)
OWN = RowFormat(question_key="problem", solution_key="solution", answer_key="answer")


def _file(tmp_path, content: str | bytes, name: str = "rows.jsonl"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("bad, says", [
    ("{not json", "invalid JSON"),
    ("[1, 2]", "a row must be a JSON object"),
    ("7", "a row must be a JSON object"),
    ("null", "a row must be a JSON object"),
    ('"text"', "a row must be a JSON object"),
])
def test_a_line_that_is_not_an_object_is_an_error_naming_file_and_line(tmp_path, bad, says):
    path = _file(tmp_path, f"{LINE}\n\n{bad}\n")
    with pytest.raises(InvalidInputError, match=f"rows.jsonl line 3: {says}"):
        load_worked(path, source="s")


def test_bytes_that_are_not_utf8_are_an_error_naming_the_line(tmp_path):
    path = _file(tmp_path, f"{LINE}\n".encode() + b'{"question": "caf\xe9"}\n')
    with pytest.raises(InvalidInputError, match="rows.jsonl line 2: not UTF-8 text"):
        load_worked(path, source="s")


def test_bom_crlf_blank_last_line_and_u2028_are_read_as_text(tmp_path):
    split = json.dumps({**GOOD, "question": "Tom has 3 apples\u2028and buys 4. How many?"},
                       ensure_ascii=False)
    path = _file(tmp_path, f"\ufeff{LINE}\r\n{split}\r\n   \n")
    problems, report = load_worked(path, source="s")
    assert [p.id for p in problems] == ["s-1", "s-2"] and report.rows == 2
    assert problems[1].text == "Tom has 3 apples\u2028and buys 4. How many?"
    assert problems[0].answer == "7" and problems[0].meta["program"].endswith("print(apples)")


@pytest.mark.parametrize("question", [None, 12, ["a"], {"q": 1}])
def test_a_question_that_is_not_text_is_dropped_and_counted(tmp_path, question):
    path = _file(tmp_path, json.dumps({**GOOD, "question": question}) + f"\n{LINE}\n")
    problems, report = load_worked(path, source="s")
    assert [p.text for p in problems] == [GOOD["question"]]  # never "None" or "12"
    key = "missing question or answer" if question is None else "question or solution is not text"
    assert report.rows == 2 and report.dropped == {key: 1}


def test_missing_and_extra_fields(tmp_path):
    rows = [{"question": "Only a question 3 4"}, {**GOOD, "source": "x", "n": 1},
            {"question": "q 3 4", "answer": 7}]
    path = _file(tmp_path, "".join(json.dumps(r) + "\n" for r in rows))
    problems, report = load_worked(path, source="s")
    assert [p.id for p in problems] == ["s-2"]
    assert report.dropped == {"missing question or answer": 1,
                              "question or solution is not text": 1}


@pytest.mark.parametrize("answer, solution, kept", [
    (7, "3+4 = <<3+4=7>>7", "7"),
    ("7", "3+4 = <<3+4=7>>7", "7"),
    ("1,000", "<<500*2=1000>>1000", "1000"),
    ("-3", "<<1-4=-3>>-3", "-3"),
    ("3/4", "<<3/4=0.75>>0.75", "3/4"),
    ("$5", "<<2+3=5>>5", "$5"),
])
def test_answers_as_numbers_or_strings_in_the_usual_notations(tmp_path, answer, solution, kept):
    path = _file(tmp_path, json.dumps({"problem": "q 3 4", "solution": solution,
                                       "answer": answer}) + "\n")
    problems, report = load_worked(path, source="s", fmt=OWN)
    assert [p.answer for p in problems] == [kept], report.examples


@pytest.mark.parametrize("answer, reason", [
    ("", "missing question or answer"), ("  ", "missing question or answer"),
    (None, "answer is not a number"), (True, "answer is not a number"),
    ("seven", "answer is not a number"),
])
def test_unusable_answers_are_dropped_with_a_reason(tmp_path, answer, reason):
    path = _file(tmp_path, json.dumps({"problem": "q 3 4", "solution": "<<3+4=7>>7",
                                       "answer": answer}) + "\n")
    problems, report = load_worked(path, source="s", fmt=OWN)
    assert problems == [] and report.dropped == {reason: 1}


def test_a_repeated_problem_is_kept_once_and_the_repeat_counted(tmp_path):
    again = json.dumps({**GOOD, "question": "  Tom has 3 apples and  buys 4 more. How many now?"})
    path = _file(tmp_path, f"{LINE}\n{again}\n")
    problems, report = load_worked(path, source="s")
    assert [p.id for p in problems] == ["s-1"]
    assert report.dropped == {"duplicate problem": 1}
    assert report.examples["duplicate problem"] == "s-2: duplicate problem: the same as s-1"


def test_a_row_with_too_many_annotations_is_dropped_before_compiling():
    """Naming steps is quadratic in their number: a 10 MB row of 400,000 annotations would run
    for hours, so past the cap a row is dropped unread (150 here keeps the test quick)."""
    steps = "3+4 = <<3+4=7>>7 apples.\n" * 150
    assert compile_solution("q 3 4", steps + "#### 7", "7").startswith(
        "too many calculator annotations: 150")


def test_an_empty_file_a_folder_or_a_missing_file_is_an_error(tmp_path):
    with pytest.raises(InvalidInputError, match="rows.jsonl holds no rows"):
        load_worked(_file(tmp_path, "\n \n"), source="s")
    for path in (tmp_path, tmp_path / "missing.jsonl"):
        with pytest.raises(InvalidInputError, match="no worked-solution file"):
            load_worked(path, source="s")
        with pytest.raises(InvalidInputError, match="no worked-solution file"):
            worked_problems(path, source="s", cache_dir=tmp_path / "cache")


def test_the_cache_is_per_row_format(tmp_path, monkeypatch):
    """The same file read with another row format is compiled again, not read from the cache."""
    monkeypatch.setattr(worked, "build_index", lambda _data: None)
    monkeypatch.setattr(worked, "decontaminate", lambda ps, _index: (ps, [], _NoHits()))
    monkeypatch.setattr(worked, "verify_programs", lambda ps, report, **_: ps)
    path = _file(tmp_path, json.dumps({"problem": "q 3 4", "solution": "<<3+4=7>>7",
                                       "answer": "7"}) + "\n")
    cache = tmp_path / "cache"
    wrong, _ = worked_problems(path, source="s", cache_dir=cache)  # the default GSM8K layout
    right, report = worked_problems(path, source="s", cache_dir=cache, fmt=OWN)
    assert wrong == [] and [p.answer for p in right] == ["7"] and report.kept == 1


class _NoHits:
    removed = 0
    hits: list = []
