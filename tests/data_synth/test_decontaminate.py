"""Decontamination against test sets, and near-duplicate removal."""

import json
import os
from pathlib import Path

import pytest

from agentrt.core.errors import ConfigError
from agentrt.core.types import Problem
from agentrt.data_synth.decontaminate import build_index, decontaminate, dedupe
from agentrt.data_synth.generators import generate

GSM_Q = ("A baker fills 14 trays with 36 rolls each and sells every roll for 2 dollars at the Saturday "
         "market near the old river bridge. How much money does the baker make?")
MATH_Q = "Find the number of ordered pairs $(a,b)$ of integers such that $a^2 + b^2 = 50$ and $a < b$ holds."


@pytest.fixture()
def tiny_data(tmp_path):
    """A data folder with one item per test set, laid out like the real one."""
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text(json.dumps({"question": GSM_Q, "answer": "#### 1008"}) + "\n")
    (tmp_path / "math500").mkdir()
    (tmp_path / "math500" / "test.jsonl").write_text(json.dumps({"problem": MATH_Q, "answer": "3"}) + "\n")
    (tmp_path / "bbh").mkdir()
    examples = [{"input": "not ( True ) and ( True ) is", "target": "False"}]
    (tmp_path / "bbh" / "boolean_expressions.json").write_text(json.dumps({"examples": examples}))
    (tmp_path / "game24").mkdir()
    (tmp_path / "game24" / "24.csv").write_text("Rank,Puzzles\n1,4 9 10 13\n2,bad row\n")
    return tmp_path


def _p(pid, text, **kw):
    return Problem(id=pid, text=text, answer=kw.pop("answer", "1"), grader=kw.pop("grader", "numeric"), **kw)


def test_planted_test_items_are_removed_and_counted(tiny_data):
    index = build_index(tiny_data)
    assert index.items == {"gsm8k": 1, "math500": 1, "bbh": 1, "game24": 1, "everyday": 80}
    clean = generate("word", 20, seed=1)
    planted = [
        _p("copy", GSM_Q),
        _p("wrapped", "Please solve: " + MATH_Q.upper() + " Show your work."),
        _p("short", "not ( True ) and ( True ) is", answer="False", grader="exact"),
        _p("puzzle", "Make 24 from 13 4 10 9.", grader="game24", meta={"numbers": [13, 4, 10, 9]}),
    ]
    problems = clean[:10] + planted + clean[10:]
    kept, removed, report = decontaminate(problems, index)
    assert [p.id for p in removed] == ["copy", "wrapped", "short", "puzzle"]
    assert kept == clean
    assert report.removed == 4 and report.kept == 20 and report.checked == 24
    assert report.threshold == 0.1 and report.n == 13
    assert report.removed_by_source == {"gsm8k": 1, "math500": 1, "bbh": 1, "game24": 1}
    assert {h.id: h.overlap for h in report.hits}["copy"] == 1.0


def test_threshold_decides_partial_overlap(tiny_data):
    index = build_index(tiny_data, n=5)
    half = GSM_Q[: len(GSM_Q) // 2] + " Then a dragon counts the golden coins in a cave far away from home."
    p = [_p("half", half)]
    kept, removed, report = decontaminate(p, index, threshold=0.2)
    assert removed and 0.2 <= report.hits[0].overlap < 1
    kept, removed, report = decontaminate(p, index, threshold=0.9)
    assert kept and not removed and report.removed == 0 and report.threshold == 0.9


def test_bad_settings(tiny_data):
    with pytest.raises(ConfigError, match="threshold"):
        decontaminate([], build_index(tiny_data), threshold=0)
    with pytest.raises(ConfigError, match="n-gram"):
        build_index(tiny_data, n=0)
    with pytest.raises(ConfigError, match="not found"):
        build_index(tiny_data / "missing")
    (tiny_data / "math500" / "test.jsonl").unlink()
    with pytest.raises(ConfigError, match="cannot read test set"):
        build_index(tiny_data)


def _real_data() -> Path:
    env = os.environ.get("AGENTRT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.skipif(not (_real_data() / "README.md").is_file(), reason="benchmark data not present")
def test_real_test_sets_catch_planted_items_and_keep_generated_ones():
    from agentrt.eval.benchmarks import load_benchmark

    index = build_index(_real_data())
    assert index.items["bbh"] == 6511 and index.items["gsm8k"] == 1319 and index.items["game24"] == 1362
    assert index.items["everyday"] == 80
    families = ("word", "logic", "arithmetic", "counting", "units", "sequences", "everyday")
    generated = [p for f in families for p in generate(f, 30, seed=9)] + generate("game24", 6, seed=9)
    planted = load_benchmark("gsm8k", data=_real_data(), limit=2).problems
    planted += load_benchmark("bbh:web_of_lies", data=_real_data(), limit=1).problems
    planted += load_benchmark("math500", data=_real_data(), limit=1).problems
    planted += load_benchmark("game24", data=_real_data(), limit=1).problems
    planted += load_benchmark("everyday", limit=1).problems
    kept, removed, report = decontaminate(generated + planted, index)
    assert [p.id for p in removed] == [p.id for p in planted]
    assert report.removed_by_source == {"gsm8k": 2, "bbh": 1, "math500": 1, "game24": 1,
                                        "everyday": 1}


def test_dedupe_drops_exact_and_near_duplicates_and_keeps_distinct_ones():
    base = ("A farmer has 12 cows and 30 sheep. Each cow eats 8 kilograms of hay per day and each sheep eats "
            "2 kilograms. How many kilograms of hay does the farmer need for one week?")
    problems = [
        _p("a", base),
        _p("b", "  " + base.upper().replace(" ", "   ") + " "),        # same text, other case/spacing
        _p("c", base.replace("one week", "one full week")),             # near-duplicate
        _p("d", "What is 3 + 4?"),
        _p("e", "What is 3 - 4?"),                                       # symbols matter
        _p("f", "A train leaves at noon travelling 60 km/h. When does it arrive 150 km away?"),
    ]
    kept, removed, report = dedupe(problems)
    assert [p.id for p in kept] == ["a", "d", "e", "f"]
    assert [(h.id, h.duplicate_of) for h in report.hits] == [("b", "a"), ("c", "a")]
    assert report.exact_duplicates == 1 and report.removed == 2 and report.kept == 4 and report.checked == 6
    assert 0.8 <= report.hits[1].similarity < 1
    strict = dedupe(problems, threshold=0.99)[2]
    assert strict.removed == 1
    assert dedupe(problems)[0] == kept  # deterministic


def test_dedupe_on_generated_sets_and_bad_settings():
    problems = generate("arithmetic", 200, seed=3)
    kept, removed, report = dedupe(problems + problems[:7])
    assert report.exact_duplicates >= 7 and len(kept) + len(removed) == 207
    assert [p.id for p in removed[-7:]] == [p.id for p in problems[:7]]
    with pytest.raises(ConfigError):
        dedupe(problems, threshold=1.5)
