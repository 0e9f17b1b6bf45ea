"""`jsonl:<path>` benchmarks with bad rows: each bad row is skipped and reported with its line,
good rows around it are kept, and no row becomes a problem that cannot be graded right."""

from __future__ import annotations

import json

import pytest

from agentrt.core.errors import ConfigError
from agentrt.eval.benchmarks import load_benchmark

GOOD = json.dumps({"problem": "What is 2+2?", "answer": "4", "grader": "numeric"})


def _load(tmp_path, content: str | bytes, grader: str | None = None):
    path = tmp_path / "bench.jsonl"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return load_benchmark(f"jsonl:{path}", grader=grader)


def _errors(load):
    return [(e.row, e.reason) for e in load.errors]


def test_a_utf8_bom_does_not_cost_the_first_row(tmp_path):
    load = _load(tmp_path, f"\ufeff{GOOD}\n{GOOD}\n")
    assert len(load.problems) == 2 and load.errors == []


def test_a_line_that_is_not_utf8_is_a_row_error_and_the_rest_is_read(tmp_path):
    load = _load(tmp_path, f"{GOOD}\n".encode() + b'{"problem": "caf\xe9"}\n'
                 + f"{GOOD}\n".encode())
    assert [p.id for p in load.problems] == ["bench-1", "bench-3"]
    assert [row for row, _ in _errors(load)] == [2]
    assert load.errors[0].reason.startswith("not UTF-8 text")


def test_malformed_rows_are_reported_by_line(tmp_path):
    rows = [GOOD, "{oops", "[1, 2]", "5", "null", json.dumps({"answer": "4"}),
            json.dumps({"problem": 5, "answer": "4", "grader": "numeric"})]
    load = _load(tmp_path, "\n".join(rows) + "\n")
    assert [p.id for p in load.problems] == ["bench-1"]
    assert [row for row, _ in _errors(load)] == [2, 3, 4, 5, 6, 7]


def test_crlf_u2028_a_blank_last_line_and_extra_fields(tmp_path):
    split = json.dumps({"problem": "a\u2028b", "answer": 4, "grader": "numeric", "x": [1]},
                       ensure_ascii=False)
    load = _load(tmp_path, f"{GOOD}\r\n{split}\r\n\r\n")
    assert [p.text for p in load.problems] == ["What is 2+2?", "a\u2028b"]
    assert load.errors == [] and load.problems[1].answer == "4"


@pytest.mark.parametrize("answer, kept", [
    (4, "4"), (4.5, "4.5"), ("1,000", "1,000"), ("-3", "-3"), ("3/4", "3/4"), ("$5", "$5"),
])
def test_numeric_answers_as_numbers_or_strings(tmp_path, answer, kept):
    load = _load(tmp_path, json.dumps({"problem": "p", "answer": answer}) + "\n",
                 grader="numeric")
    assert [p.answer for p in load.problems] == [kept] and load.errors == []


@pytest.mark.parametrize("answer, grader, says", [
    ("", "numeric", "empty 'answer'"),
    ("  ", "exact", "empty 'answer'"),
    ("", "math", "empty 'answer'"),
    ("four", "numeric", "is not a number"),
    (float("nan"), "numeric", "is not a number"),
    (float("inf"), "numeric", "is not a number"),
    (None, "numeric", "needs an 'answer'"),
    (True, "numeric", "needs an 'answer'"),
])
def test_an_answer_no_reply_could_match_is_a_row_error(tmp_path, answer, grader, says):
    load = _load(tmp_path, json.dumps({"problem": "p", "answer": answer, "grader": grader})
                 + "\n")
    assert load.problems == [] and says in load.errors[0].reason


def test_game24_rows_need_no_answer(tmp_path):
    row = {"problem": "Use the numbers 4 6 8 8 to make 24.", "answer": "", "grader": "game24"}
    assert len(_load(tmp_path, json.dumps(row) + "\n").problems) == 1


def test_a_repeated_id_is_a_row_error_a_repeated_text_is_not(tmp_path):
    rows = [{"id": "a", "problem": "p", "answer": "1"}, {"id": "a", "problem": "q", "answer": "2"},
            {"problem": "p", "answer": "1"}, {"id": "bench-3", "problem": "r", "answer": "3"}]
    load = _load(tmp_path, "".join(json.dumps(r) + "\n" for r in rows), grader="numeric")
    assert [p.id for p in load.problems] == ["a", "bench-3"]
    assert _errors(load) == [(2, "id 'a' is the id of line 1 already"),
                             (4, "id 'bench-3' is the id of line 3 already")]


def test_a_huge_line_is_read(tmp_path):
    row = {"problem": "x" * 10_000_000, "answer": "4", "grader": "numeric"}
    load = _load(tmp_path, json.dumps(row) + "\n")
    assert len(load.problems[0].text) == 10_000_000


def test_an_empty_file_has_no_problems_and_a_folder_is_an_error(tmp_path):
    empty = _load(tmp_path, "")
    assert empty.problems == [] and empty.errors == []
    with pytest.raises(ConfigError, match="problem file not found"):
        load_benchmark(f"jsonl:{tmp_path}")
