"""Counting and combinatorics, every answer computed by brute-force enumeration.

Level 1: choosing a committee, handshakes, outfits, diagonals; level 2: arrangements of a
word's letters (with repeats), podium finishes, a team with a captain, grid paths, dice totals;
level 3: counting with constraints (digit sums, divisibility, two people seated together, codes
without repeated digits). The generator enumerates with `itertools` and the program text repeats
the same enumeration.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from agentrt.data_synth.generators.base import NAMES, Draft

__all__ = ["make"]

_WORDS = ("LEVEL", "BANANA", "APPLE", "COFFEE", "LETTER", "PEPPER", "BALLOON", "GARDEN", "TOMATO",
          "RIVER", "PUZZLE", "SUCCESS", "MIRROR", "CANDLE", "ORANGE", "STREET", "COOKIE", "BUBBLE",
          "RADAR", "KAYAK", "PEBBLE", "TEETH", "LLAMA", "ERROR", "GIRAFFE", "ALPACA", "CHEESE", "DINNER")

Made = tuple[str, int, str]


def _committee(rng: random.Random) -> Made:
    n, k = rng.randint(5, 20), rng.randint(2, 4)
    count = sum(1 for _ in itertools.combinations(range(n), k))
    return (f"In how many ways can a committee of {k} be chosen from {n} people?", count,
            f"from itertools import combinations\nprint(sum(1 for _ in combinations(range({n}), {k})))")


def _handshakes(rng: random.Random) -> Made:
    n = rng.randint(4, 60)
    count = sum(1 for _ in itertools.combinations(range(n), 2))
    return (f"At a meeting of {n} people, everyone shakes hands once with everyone else. How many "
            "handshakes are there?", count,
            f"from itertools import combinations\nprint(sum(1 for _ in combinations(range({n}), 2)))")


def _outfits(rng: random.Random) -> Made:
    shirts, pants, hats = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 6)
    count = sum(1 for _ in itertools.product(range(shirts), range(pants), range(hats)))
    return (f"An outfit is one of {shirts} shirts, one of {pants} pairs of pants and one of {hats} hats. "
            "How many different outfits are there?", count,
            f"from itertools import product\nprint(sum(1 for _ in product(range({shirts}), range({pants}), "
            f"range({hats}))))")


def _diagonals(rng: random.Random) -> Made:
    n = rng.randint(4, 30)
    count = sum(1 for a, b in itertools.combinations(range(n), 2) if (b - a) % n not in (1, n - 1))
    return (f"How many diagonals does a convex polygon with {n} sides have?", count,
            f"from itertools import combinations\nn = {n}\n"
            "print(sum(1 for a, b in combinations(range(n), 2) if (b - a) % n not in (1, n - 1)))")


def _word(rng: random.Random) -> Made:
    word = rng.choice(_WORDS)
    count = len(set(itertools.permutations(word)))
    return (f"How many different arrangements of the letters of the word {word} are there?", count,
            f"from itertools import permutations\nprint(len(set(permutations(\"{word}\"))))")


def _podium(rng: random.Random) -> Made:
    n, k = rng.randint(4, 20), rng.choice((2, 3))
    places = "first, second and third" if k == 3 else "first and second"
    count = sum(1 for _ in itertools.permutations(range(n), k))
    return (f"{n} runners finish a race with no ties. In how many ways can {places} place be awarded?", count,
            f"from itertools import permutations\nprint(sum(1 for _ in permutations(range({n}), {k})))")


def _chair(rng: random.Random) -> Made:
    n, k = rng.randint(5, 16), rng.randint(2, 4)
    count = sum(k for _ in itertools.combinations(range(n), k))
    return (f"A team of {k} is chosen from {n} people, and one member of the team is made captain. "
            "How many different teams with a captain are possible?", count,
            f"from itertools import combinations\nprint(sum(1 for team in combinations(range({n}), {k}) "
            "for captain in team))")


def _grid(rng: random.Random) -> Made:
    right, up = rng.randint(2, 7), rng.randint(2, 7)
    count = sum(1 for _ in itertools.combinations(range(right + up), right))
    return (f"A path on a grid goes from (0, 0) to ({right}, {up}) in unit steps, each step right or up. "
            "How many such paths are there?", count,
            "from itertools import combinations\n"
            f"print(sum(1 for _ in combinations(range({right + up}), {right})))")


def _dice(rng: random.Random) -> Made:
    dice, faces = rng.choice((2, 3)), rng.choice((4, 6, 8, 10))
    total = rng.randint(dice + 1, dice * faces - 1)
    count = sum(1 for roll in itertools.product(range(1, faces + 1), repeat=dice) if sum(roll) == total)
    return (f"{dice} fair dice with faces numbered 1 to {faces} are rolled. In how many of the ordered outcomes "
            f"is the total {total}?", count,
            "from itertools import product\n"
            f"print(sum(1 for roll in product(range(1, {faces} + 1), repeat={dice}) if sum(roll) == {total}))")


def _digit_sum(rng: random.Random) -> Made:
    digits, target = rng.choice((2, 3)), rng.randint(4, 20)
    lo, hi = 10 ** (digits - 1), 10**digits
    count = sum(1 for v in range(lo, hi) if sum(map(int, str(v))) == target)
    return (f"How many {digits}-digit numbers have digits that add up to {target}?", count,
            f"print(sum(1 for v in range({lo}, {hi}) if sum(map(int, str(v))) == {target}))")


def _divisible(rng: random.Random) -> Made:
    n = rng.randint(50, 500)
    a, b = rng.sample((2, 3, 4, 5, 6, 7, 9, 11), 2)
    count = sum(1 for v in range(1, n + 1) if (v % a == 0) != (v % b == 0))
    return (f"How many whole numbers from 1 to {n} are divisible by {a} or by {b}, but not by both?", count,
            f"print(sum(1 for v in range(1, {n} + 1) if (v % {a} == 0) != (v % {b} == 0)))")


def _seated(rng: random.Random) -> Made:
    n = rng.randint(4, 7)
    people = rng.sample(NAMES, n)
    a, b = people[0], people[1]
    count = sum(1 for p in itertools.permutations(people) if abs(p.index(a) - p.index(b)) == 1)
    return (f"{', '.join(people[:-1])} and {people[-1]} sit in a row of {n} chairs. In how many orders can they "
            f"sit if {a} and {b} must sit next to each other?", count,
            f"from itertools import permutations\npeople = {people}\n"
            f"print(sum(1 for p in permutations(people) if abs(p.index(\"{a}\") - p.index(\"{b}\")) == 1))")


def _codes(rng: random.Random) -> Made:
    length = rng.choice((3, 4))
    parity = rng.choice(("even", "odd"))
    rem = 0 if parity == "even" else 1
    count = sum(1 for p in itertools.permutations(range(10), length) if p[-1] % 2 == rem)
    return (f"A {length}-digit code uses the digits 0-9 with no digit repeated, and its last digit is {parity}. "
            "How many codes are possible?", count,
            f"from itertools import permutations\nprint(sum(1 for p in permutations(range(10), {length}) "
            f"if p[-1] % 2 == {rem}))")


_LEVELS: dict[int, tuple[Callable[[random.Random], Made], ...]] = {
    1: (_committee, _handshakes, _outfits, _diagonals),
    2: (_word, _podium, _chair, _grid, _dice),
    3: (_digit_sum, _divisible, _seated, _codes),
}


def make(rng: random.Random, level: int) -> Draft:
    """Draw one counting problem at `level`."""
    maker = rng.choice(_LEVELS[level])
    text, count, program = maker(rng)
    return Draft(text=text, answer=str(count), grader="numeric", program=program,
                 meta={"kind": maker.__name__.lstrip("_")})
