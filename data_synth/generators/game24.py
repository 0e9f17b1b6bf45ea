"""Game of 24 puzzles that no public test set holds, each proven solvable by the exact solver.

Every solvable puzzle with numbers 1-13 is already in the common 24.csv benchmark, so new
puzzles draw from 1-24 and always include a number above 13. Difficulty follows the number of
distinct solutions the solver finds: level 1 has 12 or more, level 2 has 4 to 11, level 3 has
1 to 3 (`meta["solutions"]` holds the count, capped at 12). The stored answer is the solver's
first solution; the `game24` grader accepts any valid one.
"""

from __future__ import annotations

import random

from agentrt.data_synth.generators.base import Draft
from agentrt.data_synth.generators.game24_solver import SOLVER_PROGRAM, count_solutions, first_solution

__all__ = ["make", "LEVEL_SOLUTIONS"]

CAP = 12  # counting stops here: enough to place a puzzle in a level
LEVEL_SOLUTIONS = {1: (CAP, CAP), 2: (4, CAP - 1), 3: (1, 3)}
MAX_TRIES = 2000


def make(rng: random.Random, level: int) -> Draft:
    """Draw a fresh solvable puzzle whose solution count fits `level`."""
    lo, hi = LEVEL_SOLUTIONS[level]
    for _ in range(MAX_TRIES):
        numbers = sorted([rng.randint(14, 24)] + [rng.randint(1, 24) for _ in range(3)])
        count = count_solutions(tuple(numbers), limit=CAP)
        if lo <= count <= hi:
            break
    else:  # internal invariant: every level range holds many puzzles
        raise RuntimeError(f"no game24 puzzle found for level {level}")
    solution = first_solution(numbers)
    assert solution is not None  # count >= 1
    shown = " ".join(map(str, numbers))
    text = (f"Use the numbers {shown} each exactly once with + - * / and parentheses to make 24. "
            "Answer with the expression.")
    return Draft(text=text, answer=solution, grader="game24",
                 program=SOLVER_PROGRAM.format(numbers=numbers),
                 meta={"numbers": numbers, "solutions": count})
