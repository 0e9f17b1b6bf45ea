"""Number variants of compiled worked problems: what may change, what must not, and the answer
each variant's own program prints in the sandbox."""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import pytest

from agentrt.core.types import Problem
from agentrt.data_synth.variants import number_variants, question_numbers, run_program
from agentrt.data_synth.worked import compile_solution
from agentrt.tools.python_tool import PythonTool

DATA = Path(os.environ.get("AGENTRT_DATA")
            or Path(__file__).resolve().parents[2].parent / "shared" / "data")
needs_data = pytest.mark.skipif(not (DATA / "README.md").is_file(),
                                reason="benchmark data folder not present")


def _problem(text: str, program: str, answer: str, pid: str = "w-1") -> Problem:
    return Problem(id=pid, text=text, answer=answer, grader="numeric", family="w",
                   meta={"program": program, "source": "w", "working": "old working"})


def test_a_variant_changes_the_numbers_in_text_and_program_and_its_program_prints_its_answer():
    p = _problem("A baker makes 24 muffins a tray and bakes 6 trays. He sells 30 muffins. "
                 "How many are left?",
                 "muffins = 24 * 6\nleft = muffins - 30\nprint(left)", "114")
    variants = number_variants(p, 3, seed=1)
    assert len(variants) == 3 and len({v.text for v in variants}) == 3
    tool = PythonTool()
    for v in variants:
        assert v.text != p.text and v.answer != p.answer
        assert v.meta["variant_of"] == "w-1" and v.meta["source"] == "w-variant"
        assert v.meta["program"].splitlines()[-1] == "print(left)"
        out = tool.run({"code": v.meta["program"]})
        assert out["exit_code"] == 0 and out["stdout"].strip() == v.answer
        a, b, c = [int(o.value) for o in question_numbers(v.text)]
        assert int(v.answer) == a * b - c >= 0  # the text says what the program computes
        assert v.meta["working"].endswith(f"Final answer: {v.answer}")
    assert number_variants(p, 3, seed=1) == variants  # the same seed, the same variants


def test_whole_steps_stay_whole_and_counts_stay_non_negative():
    p = _problem("36 cookies are shared equally among 4 friends. Each friend eats 3. "
                 "How many cookies does each friend have left?",
                 "each = 36 / 4\nleft = each - 3\nprint(left)", "6")
    variants = number_variants(p, 6, seed=0)
    assert variants
    for v in variants:
        steps = run_program(v.meta["program"])
        assert all(s.denominator == 1 and s >= 0 for s in steps)
        assert int(v.answer) > 0  # a "left" that was positive never becomes 0


def test_numbers_the_program_cannot_have_read_stay_as_written():
    p = _problem("On the 2nd day at 3:30 pm, Kim reads 1/2 of a 40 page book and 10 more "
                 "pages. How many pages has she read?",
                 "half = 40 / 2\npages = half + 10\nprint(pages)", "30")
    for v in number_variants(p, 4, seed=2):
        assert "2nd day at 3:30 pm" in v.text and "1/2 of a" in v.text
        assert "/ 2" in v.meta["program"]  # the 2 of "1/2" is not the 2 of "2nd"
        assert Fraction(v.answer) == Fraction(v.meta["changed"].get("40", "40")) / 2 \
            + Fraction(v.meta["changed"].get("10", "10"))


def test_a_number_a_word_also_gives_is_never_changed():
    # "twice" is the program's 2; the question's own 2 is the same value, so neither changes.
    p = _problem("Tom has 2 boxes of 9 pens. Ann has twice as many pens as Tom. "
                 "How many pens does Ann have?",
                 "pens = 2 * 9\nann = pens * 2\nprint(ann)", "36")
    for v in number_variants(p, 4, seed=0):
        assert v.text.startswith("Tom has 2 boxes of ")
        assert v.meta["program"].startswith("pens = 2 * ")
        assert set(v.meta["changed"]) == {"9"}


def test_a_number_that_is_also_a_result_gives_no_variant():
    # 18 is both the number of sets (72 / 4) and the cost (6 * 3): which one the program's
    # `made - sets` meant cannot be told, so the problem is not varied.
    p = _problem("Jonah buys 6 pineapples for $3 each and cuts each into 12 rings. He sells "
                 "rings 4 for $5. What is his profit?",
                 "rings = 6 * 12\nsets = rings / 4\nmade = sets * 5\nprofit = made - sets\n"
                 "print(profit)", "72")
    p.meta["working"] = "6 * 3 = 18 dollars. 6 * 12 = 72 rings. 72 / 4 = 18 sets. 18 * 5 = 90."
    assert number_variants(p, 3) == []
    # The friends' 4 is also the count left: a later change of 4 could not be followed.
    q = _problem("24 cookies are shared among 4 friends. Each eats 2. How many are left each?",
                 "each = 24 / 4\nleft = each - 2\nprint(left)", "4")
    assert number_variants(q, 3) == []


def test_a_program_with_a_result_written_in_or_a_copied_answer_gives_no_variant():
    # 25 is Greg's count, computed in the solution's words: the program cannot follow a change.
    written_in = _problem("Megan read 32 books. Kelcie read a quarter of that. Greg read 9 "
                          "more than twice Kelcie's. How many in all?",
                          "kelcie = 32 / 4\ntotal = 32 + kelcie + 25\nprint(total)", "65")
    assert number_variants(written_in, 3) == []
    copied = _problem("Kat got 70 and 80 and needs an average of 90. What does she need?",
                      "step1 = 120\nprint(step1)", "120")
    assert number_variants(copied, 3) == []
    assert number_variants(_problem("x", "print(1)", "1"), 3) == []
    assert number_variants(_problem("Add 5 and 7.", "s = 5 + 7\nprint(s)", "12"), 0) == []


def test_percentages_money_and_thousands_keep_their_form():
    p = _problem("A $1,200 bike is 25% off. Kim pays with $1,500.50. What change does she get?",
                 "off = 1200 * 25 / 100\nprice = 1200 - off\nchange = 1500.50 - price\n"
                 "print(change)", "600.5")
    variants = number_variants(p, 5, seed=4)
    assert variants
    tool = PythonTool()
    for v in variants:
        nums = question_numbers(v.text)
        percent = next(o for o in nums if o.percent)
        assert 1 <= percent.value <= 99
        assert any(o.commas for o in nums) and "." in v.text.split("$")[2].split()[0]
        out = tool.run({"code": v.meta["program"]})
        assert float(out["stdout"]) == pytest.approx(float(v.answer), abs=1e-6)


@pytest.mark.parametrize("program", ["x = 1 +\nprint(x)", "x = 5 / 0\nprint(x)",
                                     "x = 5\nprint(y)", "import os\nprint(1)"])
def test_a_program_that_is_not_straight_line_arithmetic_is_refused(program):
    assert run_program(program) is None


@needs_data
def test_a_run_can_add_variants_of_its_real_problems_or_keep_only_them(tmp_path, monkeypatch):
    from agentrt.training.data import real_problems

    monkeypatch.setenv("AGENTRT_DATA", str(DATA))  # the test sets to decontaminate against
    rows = [{"question": f"Sam has {i} pens and buys {i + 3} more. How many pens does he have?",
             "answer": f"{i}+{i + 3} = <<{i}+{i + 3}={2 * i + 3}>>{2 * i + 3} pens\n"
                       f"#### {2 * i + 3}"} for i in range(10, 16)]
    path = tmp_path / "pens.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert not isinstance(compile_solution(rows[0]["question"], rows[0]["answer"], "23"), str)
    source = f"pens={path}"
    both, reports = real_problems([source], 4, seed=0, iteration=1, home=tmp_path, exclude=[],
                                  variants=2)
    originals = [p for p in both if "variant_of" not in p.meta]
    variants = [p for p in both if "variant_of" in p.meta]
    assert len(originals) == 4 and 4 <= len(variants) <= 8
    assert {v.meta["variant_of"] for v in variants} <= {p.id for p in originals}
    report = reports["pens-variant"]
    assert report["kept"] == len(variants) and report["of"] == 4 and report["varied"] >= 2
    only, _ = real_problems([source], 4, seed=0, iteration=1, home=tmp_path, exclude=[],
                            variants=2, originals=False)
    assert [p.id for p in only] == [p.id for p in variants]


def test_a_run_that_keeps_no_originals_must_ask_for_variants():
    from agentrt.core.errors import ConfigError
    from agentrt.training.config import load_config

    with pytest.raises(ConfigError, match="real_variants"):
        load_config("cpu", real_originals=False)
    with pytest.raises(ConfigError, match="real_variants"):
        load_config("cpu", real_variants=9)
    assert load_config("cpu", real_variants=2, real_originals=False).real_variants == 2


def test_a_value_written_twice_is_written_exactly_both_times():
    from agentrt.data_synth.variants import _written

    whole, cents = question_numbers("It costs 3 dollars, or 3.00 with tax; 1,200 in all.")[:2]
    assert _written(Fraction(7, 2), whole) == "3.5" and _written(Fraction(7, 2), cents) == "3.50"
    assert _written(Fraction(4), whole) == "4" and _written(Fraction(4), cents) == "4.00"
    thousands = question_numbers("1,200 in all")[0]
    assert _written(Fraction(25001, 2), thousands) == "12,500.5"
