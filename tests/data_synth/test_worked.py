"""Worked solutions compiled into programs: tricky annotations, sandbox verification, caching and
decontamination against the test sets."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agentrt.core.errors import InvalidInputError
from agentrt.data_synth.inline import one_line_steps
from agentrt.data_synth.worked import (RowFormat, WorkedReport, compile_solution, load_worked,
                               verify_programs, worked_problems)
from agentrt.workflows.slow.toolcall import COMPACT_CODE_PATTERN

DATA = Path(os.environ.get("AGENTRT_DATA")
            or Path(__file__).resolve().parents[2].parent / "shared" / "data")
needs_data = pytest.mark.skipif(not (DATA / "README.md").is_file(),
                                reason="benchmark data folder not present")


def _program(question, solution, answer):
    out = compile_solution(question, solution, answer)
    assert not isinstance(out, str), out
    return out


def test_each_annotation_is_a_named_step_and_results_chain_by_name():
    out = _program(
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?",
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72", "72")
    assert out.program == "clips = 48 / 2\nclips_altogether = 48 + clips\nprint(clips_altogether)"
    assert out.steps == 2
    assert out.working.endswith("Natalia sold 48+24 = 72 clips altogether in April and May.\n"
                                "Final answer: 72")
    assert "<<" not in out.working and "####" not in out.working


def test_money_percentages_and_units():
    money = _program("Weng earns $12 an hour for babysitting. She did 50 minutes. How much?",
                     "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
                     "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10", "10")
    assert money.program == ("per_minute = 12 / 60\nearned = per_minute * 50\nprint(earned)")
    percent = _program("A $40 shirt is 25% off. What is the price?",
                       "The discount is 40*.25 = $<<40*.25=10>>10.\n"
                       "So it costs 40-10 = $<<40-10=30>>30.\n#### 30", "30")
    assert "0.25" in percent.program and percent.program.endswith("print(costs)")
    units = _program("A movie lasts 2 hours. How many minutes long is it?",
                     "2 hours is 2*60 = <<2*60=120>>120 minutes.\n#### 120", "120")
    assert units.program == "minutes = 2 * 60\nprint(minutes)"


def test_a_result_equal_to_a_question_number_is_named_only_when_it_is_the_last_result():
    # 5 is in the question; the second annotation's 5 is the result just before it.
    out = _program("Tom has 5 apples and 10 pears. He gives away 5 pears. How many fruits?",
                   "He keeps 10-5 = <<10-5=5>>5 pears.\nHe has 5+5 = <<5+5=10>>10 fruits.\n#### 10",
                   "10")
    assert out.program.splitlines()[1] == "fruits = pears + pears"


def test_rounding_and_non_integer_answers():
    out = _program("3 friends share $10 equally, then each spends $1.5. How much is left each?",
                   "Each gets 10/4 = $<<10/4=2.5>>2.5.\nEach has 2.5-1.5 = $<<2.5-1.5=1>>1 left."
                   "\n#### 1", "1")
    assert out.program.endswith("print(left)")
    half = _program("Half of 5 cakes?", "5/2 = <<5/2=2.5>>2.5 cakes\n#### 2.5", "2.5")
    assert half.program == "cakes = 5 / 2\nprint(cakes)"


def test_steps_the_answer_does_not_need_are_left_out():
    out = _program("A side question then the real one.",
                   "Unrelated: 7*7 = <<7*7=49>>49 tiles.\nAnswer: 3+4 = <<3+4=7>>7 cats.\n#### 7",
                   "7")
    assert out.program == "cats = 3 + 4\nprint(cats)"


@pytest.mark.parametrize("solution,answer,reason", [
    ("No calculator here, the answer is 4.\n#### 4", "4", "no calculator annotations"),
    ("He has 2*3 = <<2*3=6>>6 apples and eats one, so 5 remain.\n#### 5", "5",
     "no annotated step computes the answer"),
    ("It is <<2^3=8>>8.\n#### 8", "8", "annotation is not plain arithmetic"),
    ("It is <<8>>8.\n#### 8", "8", "annotation without '='"),
    ("It is <<4/0=0>>0.\n#### 0", "0", "annotation does not parse"),
    ("It is <<2*3=6>>6.\n#### six", "six", "answer is not a number"),
])
def test_rows_that_cannot_be_compiled_say_why(solution, answer, reason):
    out = compile_solution("A question with 2 and 3.", solution, answer)
    assert isinstance(out, str) and out.startswith(reason)


def test_a_wrong_stated_result_is_recomputed_not_copied():
    # The annotation says 7 (a typo in the data): the program computes 6, and the answer step
    # is found by the true value.
    out = _program("2 times 3?", "2*3 = <<2*3=7>>7 things\n#### 6", "6")
    assert out.program == "things = 2 * 3\nprint(things)"


def test_compiled_programs_fit_the_compact_call_grammar():
    import re

    out = _program("Natalia sold 48 clips in April and half as many in May. Total?",
                   "48/2 = <<48/2=24>>24 clips in May.\n48+24 = <<48+24=72>>72 clips.\n#### 72",
                   "72")
    line = one_line_steps(out.program)
    assert line == "clips = 48 / 2; clips_2 = 48 + clips; print(clips_2)"
    assert re.match(COMPACT_CODE_PATTERN, line)


def _rows(tmp_path, rows):
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_load_worked_reads_rows_in_any_layout_and_counts_drops(tmp_path):
    path = _rows(tmp_path, [
        {"q": "2 boxes of 3 pens. Pens?", "sol": "2*3 = <<2*3=6>>6 pens", "ans": "6"},
        {"q": "Nothing to compute.", "sol": "It is 4.", "ans": "4"},
        {"q": "", "sol": "x", "ans": "1"},
    ])
    problems, report = load_worked(path, source="mine",
                                   fmt=RowFormat(question_key="q", solution_key="sol",
                                                 answer_key="ans"))
    assert [p.id for p in problems] == ["mine-1"] and problems[0].family == "mine"
    assert problems[0].meta["program"] == "pens = 2 * 3\nprint(pens)"
    assert report.rows == 3 and report.kept == 1
    assert report.dropped == {"no calculator annotations": 1, "missing question or answer": 1}
    with pytest.raises(InvalidInputError):
        load_worked(tmp_path / "missing.jsonl", source="x")


def test_the_sandbox_drops_a_program_that_prints_a_wrong_answer(tmp_path):
    path = _rows(tmp_path, [
        {"question": "2 boxes of 3 pens. Pens?", "answer": "2*3 = <<2*3=6>>6 pens\n#### 6"},
        {"question": "1 plus 1?", "answer": "1+1 = <<1+1=2>>2\n#### 2"},
    ])
    problems, report = load_worked(path, source="t")
    # A program tampered with after compiling: only the sandbox run can tell it is wrong.
    problems[1].meta["program"] = "print(3)"
    kept = verify_programs(problems, report, workers=2)
    assert [p.id for p in kept] == ["t-1"] and report.kept == 1
    assert report.dropped == {"program printed a wrong answer": 1}
    problems[0].meta["program"] = "raise SystemExit(3)"
    fresh = WorkedReport()
    assert verify_programs(problems[:1], fresh) == []
    assert fresh.dropped == {"program failed in the sandbox": 1}


@needs_data
def test_no_test_set_problem_enters_training(tmp_path):
    """A source holding GSM8K test problems (and a clean one) yields only the clean one."""
    from agentrt.eval.benchmarks import load_benchmark

    tests = load_benchmark("gsm8k", data=DATA, limit=3).problems
    rows = [{"question": p.text, "answer": f"It is <<1+1=2>>2.\n#### 2"} for p in tests]
    rows.append({"question": "A farmer has 2 cows and buys 1 more. How many cows now?",
                 "answer": "2+1 = <<2+1=3>>3 cows\n#### 3"})
    path = _rows(tmp_path, rows)
    problems, report = worked_problems(path, source="leaky", cache_dir=tmp_path / "cache",
                                       decontaminate_against=DATA, workers=2)
    assert [p.text for p in problems] == [rows[-1]["question"]]
    assert report.contaminated == 3 and report.dropped == {"overlaps a test set": 3}
    # Cached: the second call reads the compiled set back, report included.
    again, report2 = worked_problems(path, source="leaky", cache_dir=tmp_path / "cache")
    assert [p.model_dump() for p in again] == [p.model_dump() for p in problems]
    assert report2 == report


@needs_data
def test_the_real_problems_of_a_run_are_new_each_iteration_and_never_held_out(
        tmp_path, monkeypatch):
    from agentrt.training.data import real_problems

    monkeypatch.setenv("AGENTRT_DATA", str(DATA))  # the test sets to decontaminate against
    rows = [{"question": f"Sam has {i} pens and buys 2 more. How many pens does Sam have?",
             "answer": f"{i}+2 = <<{i}+2={i + 2}>>{i + 2} pens\n#### {i + 2}"} for i in range(10)]
    path = _rows(tmp_path, rows)
    source = f"pens={path}"
    one, reports = real_problems([source], 4, seed=0, iteration=1, home=tmp_path, exclude=[])
    two, _ = real_problems([source], 4, seed=0, iteration=2, home=tmp_path, exclude=[])
    assert len(one) == len(two) == 4 and not {p.id for p in one} & {p.id for p in two}
    assert reports["pens"]["kept"] == 10
    held = one[:1]
    again, _ = real_problems([source], 4, seed=0, iteration=1, home=tmp_path, exclude=held)
    assert held[0].text not in {p.text for p in again}
    with pytest.raises(InvalidInputError):
        real_problems([source], 4, seed=0, iteration=3, home=tmp_path, exclude=[])
    # A run continuing from a model trained on iteration 1's slice starts after it.
    later, _ = real_problems([source], 4, seed=0, iteration=1, home=tmp_path, exclude=[],
                             offset=4)
    assert [p.id for p in later] == [p.id for p in two]
    with pytest.raises(InvalidInputError, match="after skipping 4"):
        real_problems([source], 4, seed=0, iteration=2, home=tmp_path, exclude=[], offset=4)
