"""Benchmark loaders on the real data files, and malformed rows in a temp JSONL."""

import json
import os
from pathlib import Path

import pytest

from agentrt.core.errors import ConfigError
from agentrt.eval.benchmarks import bbh_tasks, load_benchmark, resolve_data_dir
from agentrt.eval.graders import grade


def _data_dir() -> Path:
    env = os.environ.get("AGENTRT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


DATA = _data_dir()
needs_data = pytest.mark.skipif(not (DATA / "README.md").is_file(), reason="benchmark data folder not present")


@needs_data
def test_game24_default_slice_is_rows_900_to_999():
    load = load_benchmark("game24", data=DATA)
    assert len(load.problems) == 100 and not load.errors
    first = load.problems[0]
    assert first.id == "game24-900" and first.grader == "game24" and first.family == "game24"
    assert first.meta["numbers"] == [4, 5, 6, 10]
    assert first.text.startswith("Use the numbers 4 5 6 10 each exactly once with + - * / and parentheses")
    assert grade("(10 - 6) * 5 + 4", first).correct
    assert not grade("4 * (10 - 5) + 6 - 2", first).correct  # 2 is not in the puzzle
    assert not grade("4 * 6 * (10 - 5) / 5", first).correct  # 5 used twice


@needs_data
def test_game24_all_and_limit():
    load = load_benchmark("game24:all", data=DATA, limit=5)
    assert [p.id for p in load.problems] == [f"game24-{i}" for i in range(5)]
    assert load.problems[0].meta["numbers"] == [1, 1, 4, 6]


@needs_data
def test_gsm8k_test_split_in_file_order():
    load = load_benchmark("gsm8k", data=DATA)
    assert len(load.problems) == 1319 and not load.errors
    p = load.problems[0]
    assert p.id == "gsm8k-test-0" and p.answer == "18" and p.grader == "numeric" and p.family == "gsm8k"
    assert p.text.startswith("Janet")
    assert [q.id for q in load_benchmark("gsm8k", data=DATA, limit=3).problems] == [
        "gsm8k-test-0", "gsm8k-test-1", "gsm8k-test-2"]


@needs_data
def test_math500():
    load = load_benchmark("math500", data=DATA, limit=10)
    p = load.problems[0]
    assert p.grader == "math" and p.family == "math500" and p.meta["subject"] == "Precalculus"
    assert p.answer == r"\left( 3, \frac{\pi}{2} \right)" and p.difficulty == 2
    assert grade(r"\boxed{(3, \frac{\pi}{2})}", p).correct


@needs_data
def test_bbh_all_tasks_and_one_task():
    tasks = bbh_tasks(DATA)
    assert len(tasks) == 27 and "dyck_languages" in tasks
    everything = load_benchmark("bbh", data=DATA)
    assert len(everything.problems) == 6511 and not everything.errors
    one = load_benchmark("bbh:boolean_expressions", data=DATA)
    assert len(one.problems) == 250
    p = one.problems[0]
    assert p.text == "not ( True ) and ( True ) is" and p.answer == "False"
    assert p.family == "bbh:boolean_expressions" and p.grader == "bbh"
    assert grade("false", p).correct


@needs_data
def test_unknown_benchmark_and_task_name_the_choices():
    with pytest.raises(ConfigError, match="unknown benchmark 'gsm9k'.*game24.*bbh:<task>"):
        load_benchmark("gsm9k", data=DATA)
    with pytest.raises(ConfigError, match="unknown BBH task 'nope'.*boolean_expressions"):
        load_benchmark("bbh:nope", data=DATA)
    with pytest.raises(ConfigError, match="limit"):
        load_benchmark("gsm8k", data=DATA, limit=0)


def test_missing_data_folder_names_the_path(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match="nowhere"):
        load_benchmark("gsm8k", data=missing)
    with pytest.raises(ConfigError, match="benchmark file not found"):
        load_benchmark("math500", data=tmp_path)


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTRT_DATA", str(tmp_path))
    assert resolve_data_dir() == tmp_path
    monkeypatch.delenv("AGENTRT_DATA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="shared/data"):
        resolve_data_dir()


def test_jsonl_malformed_rows_are_reported_and_skipped(tmp_path):
    path = tmp_path / "mine.jsonl"
    rows = [
        json.dumps({"id": "a", "problem": "What is 2+2?", "answer": "4", "grader": "numeric"}),
        "{not json",
        json.dumps({"question": "Capital of France?", "answer": "Paris", "grader": "exact"}),
        json.dumps({"problem": "no answer", "grader": "numeric"}),
        json.dumps(["a", "list"]),
        "",
        json.dumps({"text": "3*3?", "answer": 9}),
        json.dumps({"problem": "x", "answer": "1", "grader": "wizard"}),
        json.dumps({"problem": "   ", "answer": "1", "grader": "numeric"}),
    ]
    path.write_text("\n".join(rows) + "\n")
    load = load_benchmark(f"jsonl:{path}", grader="numeric")
    assert [p.id for p in load.problems] == ["a", "mine-3", "mine-7"]
    assert load.problems[1].grader == "exact" and load.problems[2].answer == "9"
    assert load.problems[2].grader == "numeric" and load.problems[0].family == "mine"
    assert [(e.row, e.reason.split(":")[0].split(" (")[0]) for e in load.errors] == [
        (2, "invalid JSON"), (4, "needs an 'answer'"),
        (5, 'a row must be a JSON object, not ["a", "list"]'),
        (8, "unknown or missing grader 'wizard'; choose one of"),
        (9, "needs a non-empty 'problem', 'question' or 'text' string"),
    ]
    # without a default grader, rows that name none are reported too
    no_default = load_benchmark(f"jsonl:{path}")
    assert [e.row for e in no_default.errors] == [2, 4, 5, 7, 8, 9]


def test_jsonl_missing_file_and_unknown_default_grader(tmp_path):
    with pytest.raises(ConfigError, match="problem file not found"):
        load_benchmark(f"jsonl:{tmp_path / 'absent.jsonl'}")
    path = tmp_path / "p.jsonl"
    path.write_text('{"problem": "q", "answer": "1"}\n')
    with pytest.raises(ConfigError, match="unknown grader 'wizard'"):
        load_benchmark(f"jsonl:{path}", grader="wizard")


@pytest.mark.parametrize("spec", ["everyday", "everyday:2"])
def test_everyday_questions_are_installed_with_the_package_and_graded_numerically(spec):
    load = load_benchmark(spec)
    assert len(load.problems) == 40 and not load.errors and load.spec == spec
    assert len({p.id for p in load.problems}) == 40
    for p in load.problems:
        assert p.grader == "numeric" and p.family == "everyday"
        assert grade(p.answer, p).correct and not grade(p.answer + "1", p).correct
    assert load_benchmark(spec, limit=3).problems == load.problems[:3]


def test_the_everyday_sets_differ_and_an_unknown_set_is_refused():
    first, second = load_benchmark("everyday:1"), load_benchmark("everyday:2")
    assert first.problems == load_benchmark("everyday").problems
    assert not {p.text for p in first.problems} & {p.text for p in second.problems}
    assert not {p.id for p in first.problems} & {p.id for p in second.problems}
    with pytest.raises(ConfigError, match="unknown everyday set 'x'.*everyday:2"):
        load_benchmark("everyday:x")
