"""The exact Game of 24 solver and its standalone program twin."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt.eval.arith import evaluate_arithmetic
from agentrt.data_synth.generators.game24_solver import SOLVER_PROGRAM, all_solutions, first_solution, is_solvable


def test_known_puzzles():
    assert first_solution([3, 3, 8, 8]) == "8 / (3 - (8 / 3))"  # needs a fraction on the way
    assert is_solvable([4, 9, 10, 13]) and is_solvable([1, 5, 5, 5])
    assert not is_solvable([1, 1, 1, 1]) and first_solution([1, 1, 1, 1]) is None
    assert first_solution([24]) == "24" and first_solution([7], target=7) == "7"


def test_every_solution_is_exact_and_uses_each_number_once():
    sols = all_solutions([4, 9, 10, 13])
    assert len(sols) == len(set(sols)) > 1
    for s in sols:
        value, used = evaluate_arithmetic(s)
        assert value == 24 and sorted(used) == [4, 9, 10, 13]
    assert all_solutions([4, 9, 10, 13], limit=2) == sols[:2]


def test_bad_input():
    with pytest.raises(ValueError):
        first_solution([])
    with pytest.raises(ValueError):
        first_solution([1, 2, 3.5, 4])


@pytest.mark.parametrize("numbers", [[3, 3, 8, 8], [2, 7, 13, 21], [1, 2, 3, 4]])
def test_program_finds_the_same_first_solution(numbers):
    out = subprocess.run([sys.executable, "-I", "-c", SOLVER_PROGRAM.format(numbers=numbers)],
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == first_solution(numbers)


def _data_dir() -> Path:
    env = os.environ.get("AGENTRT_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.mark.skipif(not (_data_dir() / "game24" / "24.csv").is_file(), reason="benchmark data not present")
def test_every_puzzle_of_the_hard_test_slice_is_solvable():
    with (_data_dir() / "game24" / "24.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))[900:1000]
    assert len(rows) == 100
    assert all(is_solvable([int(x) for x in r["Puzzles"].split()]) for r in rows)
