"""Seeded, deterministic problem generators with exact answers, a grader each, and difficulty 1-3.

    >>> from agentrt.data_synth.generators import generate
    >>> [p.answer for p in generate("arithmetic", 2, seed=7, difficulty=1)] == \\
    ...     [p.answer for p in generate("arithmetic", 2, seed=7, difficulty=1)]
    True

Every problem carries a stable id (family, seed, difficulty choice, index and text hashed), its
family, difficulty and seed, and in `meta["program"]` a short standalone Python program that
prints the answer, for gold traces with a real tool call. The same arguments always give the
same problems; problems within one call are distinct. Decontamination against test sets and
near-duplicate removal are `agentrt.data_synth.decontaminate`'s job, not this package's.
"""

from __future__ import annotations

import random

from agentrt.core.errors import ConfigError
from agentrt.core.types import Problem
from agentrt.data_synth.generators import (arithmetic, counting, everyday, game24, infox, linear, logic,
                                           quadratic, sequences, units, word)
from agentrt.data_synth.generators.base import Draft, Family, problem_id

__all__ = ["FAMILIES", "Family", "Draft", "generate", "LEVELS", "HELDOUT_SEEDS"]

LEVELS = (1, 2, 3)
ATTEMPTS_PER_PROBLEM = 50

# name -> family; adding a family is one new module plus one line here.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("arithmetic", arithmetic.make, "multi-step integer arithmetic"),
        Family("word", word.make, "arithmetic word problems from ten templates"),
        Family("linear", linear.make, "linear equations and 2x2 / 3x3 systems"),
        Family("quadratic", quadratic.make, "quadratic equations with integer roots"),
        Family("game24", game24.make, "new Game of 24 puzzles, solvable by construction"),
        Family("units", units.make, "unit conversions and rates"),
        Family("logic", logic.make, "boolean expressions, liars and orderings"),
        Family("sequences", sequences.make, "next term of a sequence"),
        Family("counting", counting.make, "combinatorics by brute-force counting"),
        Family("infox", infox.make, "word problems whose facts are split between two agents"),
        Family("everyday", everyday.make, "short everyday questions (percent, prices, speed, "
                                          "averages, ...) in many wordings"),
    )
}
# family -> seeds reserved for a held-out evaluation benchmark (never training data)
HELDOUT_SEEDS: dict[str, range] = {"infox": infox.HELDOUT_SEEDS}


def _check_args(family: str, n: object, difficulty: object) -> Family:
    fam = FAMILIES.get(family)
    if fam is None:
        raise ConfigError(f"unknown problem family {family!r}; choose one of: {', '.join(FAMILIES)}")
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ConfigError(f"number of problems must be a positive integer, got {n!r}")
    if difficulty is not None and difficulty not in LEVELS:
        raise ConfigError(f"difficulty must be 1, 2 or 3 (or None for a mix), got {difficulty!r}")
    return fam


def generate(family: str, n: int, seed: int, difficulty: int | None = None, *,
             heldout: bool = False) -> list[Problem]:
    """Generate `n` distinct problems of one family.

    Args:
        family: one of `FAMILIES`.
        n: how many problems (>= 1).
        seed: the random seed; the same arguments always give the same problems.
        difficulty: 1, 2 or 3; None cycles through 1, 2, 3.
        heldout: allow a seed in `HELDOUT_SEEDS` (only the held-out benchmark's loader does).

    Returns:
        Problems with id, text, exact answer, grader, family, difficulty, seed and
        `meta["program"]` (a Python program that prints the answer).

    Raises:
        ConfigError: unknown family, `n` <= 0, a bad difficulty, or the family cannot produce
            `n` distinct problems at that difficulty, or a held-out seed without `heldout`.
    """
    fam = _check_args(family, n, difficulty)
    if not heldout and seed in HELDOUT_SEEDS.get(family, ()):
        reserved = HELDOUT_SEEDS[family]
        raise ConfigError(f"seeds {reserved.start}-{reserved.stop - 1} of family {family!r} are held out "
                          "for evaluation; choose another seed")
    rng = random.Random(f"{family}:{seed}:{difficulty}")
    seen: set[str] = set()
    out: list[Problem] = []
    attempts = 0
    while len(out) < n:
        if attempts >= ATTEMPTS_PER_PROBLEM * n + 100:
            raise ConfigError(f"family {family!r} produced only {len(out)} distinct problems of the "
                              f"{n} asked for at difficulty {difficulty}; ask for fewer")
        attempts += 1
        level = difficulty or LEVELS[len(out) % len(LEVELS)]
        draft = fam.make(rng, level)
        key = " ".join(draft.text.split()).casefold()
        if key in seen:
            continue
        seen.add(key)
        index = len(out)
        out.append(Problem(
            id=problem_id(family, seed, difficulty, index, draft.text), text=draft.text, answer=draft.answer,
            grader=draft.grader, family=family, difficulty=level, seed=seed,
            meta={**draft.meta, "program": draft.program, "index": index},
        ))
    return out
