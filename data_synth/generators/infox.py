"""Information-exchange word problems: facts, one per sentence, dealt between two agents.

Each template states its quantities in separate fact sentences (two at level 1, three at level 2,
four at level 3), every fact with a number the solution uses, and asks one question. The facts
are dealt by `agentrt.data_synth.split.deal`: the asker gets some facts and the question, the
informant the rest, each at least one, so that each agent lacks a number the answer needs
(numbers within a problem are distinct, so no agent can stand in for the other). `text` is the
whole problem for a single agent; `meta["agents"]` and `meta["question"]` are the team's view.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from agentrt.data_synth.generators.base import NAMES, Draft
from agentrt.data_synth.split import agents_lacking, deal, numbers

__all__ = ["make", "TEMPLATES", "HELDOUT_SEEDS"]

# (fact sentences, question, answer, program)
Made = tuple[list[str], str, int, str]


def _stock(rng: random.Random, level: int, who: str) -> Made:
    start, sold = rng.randint(40, 120), rng.randint(5, 35)
    facts = [f"{who}'s shop had {start} apples in the morning.", f"It sold {sold} apples before noon."]
    prog, value = f"apples = {start} - {sold}\n", start - sold
    if level >= 2:
        came = rng.randint(10, 60)
        facts.append(f"A delivery brought {came} more apples in the afternoon.")
        prog, value = prog + f"apples = apples + {came}\n", value + came
    if level >= 3:
        price = rng.randint(2, 9)
        facts.append(f"At closing, every apple left is packed into bags of {price}.")
        value -= value % price
        return (facts, "How many apples are packed into full bags at closing?", value,
                prog + f"print(apples - apples % {price})")
    return facts, "How many apples does the shop have at closing?", value, prog + "print(apples)"


def _scores(rng: random.Random, level: int, who: str) -> Made:
    other = rng.choice([n for n in NAMES if n != who])
    a, more = rng.randint(10, 60), rng.randint(3, 25)
    facts = [f"{who} scored {a} points in the game.", f"{other} scored {more} points more than {who}."]
    prog, total = f"first = {a}\nsecond = first + {more}\n", a + a + more
    if level >= 2:
        third = rng.choice([n for n in NAMES if n not in (who, other)])
        k = rng.randint(2, 4)
        facts.append(f"{third} scored {k} times as many points as {who}.")
        prog, total = prog + f"third = {k} * first\n", total + k * a
        if level >= 3:
            bonus = rng.randint(5, 40)
            facts.append(f"The team also got {bonus} bonus points.")
            return (facts, "How many points did the team score in total?", total + bonus,
                    prog + f"print(first + second + third + {bonus})")
        return facts, "How many points did the three of them score together?", total, \
            prog + "print(first + second + third)"
    return facts, "How many points did the two of them score together?", total, prog + "print(first + second)"


def _trip(rng: random.Random, level: int, who: str) -> Made:
    speed, hours = rng.randint(6, 16) * 5, rng.randint(2, 6)
    facts = [f"{who} drove at {speed} km/h on the first day.", f"The first day's drive lasted {hours} hours."]
    prog, dist = f"day1 = {speed} * {hours}\n", speed * hours
    if level >= 2:
        extra = rng.randint(11, 99)
        facts.append(f"On the second day {who} drove {extra} km farther than on the first day.")
        prog, dist = prog + f"day2 = day1 + {extra}\n", dist + dist + extra
        if level >= 3:
            left = rng.randint(101, 999)
            facts.append(f"After both days, {left} km of the route were still left.")
            return (facts, "How many kilometers long is the whole route?", dist + left,
                    prog + f"print(day1 + day2 + {left})")
        return facts, "How many kilometers did the two days cover?", dist, prog + "print(day1 + day2)"
    return facts, "How many kilometers did the first day cover?", dist, prog + "print(day1)"


def _savings(rng: random.Random, level: int, who: str) -> Made:
    weekly, weeks = rng.randint(6, 30), rng.randint(3, 12)
    facts = [f"{who} saves ${weekly} every week.", f"{who} has been saving for {weeks} weeks."]
    prog, money = f"saved = {weekly} * {weeks}\n", weekly * weeks
    if level >= 2:
        gift = rng.randint(31, 99)
        facts.append(f"An aunt gave {who} ${gift} to add to the savings.")
        prog, money = prog + f"saved = saved + {gift}\n", money + gift
    if level >= 3:
        spent = rng.randint(1, money - 1)
        facts.append(f"{who} then spent ${spent} on a pair of shoes.")
        return (facts, f"How many dollars does {who} have left?", money - spent,
                prog + f"print(saved - {spent})")
    return facts, f"How many dollars has {who} saved?", money, prog + "print(saved)"


def _chain(rng: random.Random, level: int, who: str) -> Made:
    del who
    a, b = rng.randint(11, 99), rng.randint(2, 9)
    facts = [f"The number p is {a}.", f"The number q is p times {b}."]
    prog, value = f"p = {a}\nq = p * {b}\n", a * b
    if level >= 2:
        c = rng.randint(101, 999)
        facts.append(f"The number r is q plus {c}.")
        prog, value = prog + f"r = q + {c}\n", value + c
        if level >= 3:
            d = rng.randint(1, value - 1)
            facts.append(f"The number s is r minus {d}.")
            return facts, "What is s?", value - d, prog + f"print(r - {d})"
        return facts, "What is r?", value, prog + "print(r)"
    return facts, "What is q?", value, prog + "print(q)"


TEMPLATES: dict[str, Callable[[random.Random, int, str], Made]] = {
    "stock": _stock, "scores": _scores, "trip": _trip, "savings": _savings, "chain": _chain,
}
MAX_TRIES = 100
# Seeds of the held-out `infox` evaluation benchmark; `generate` refuses them for training data.
HELDOUT_SEEDS = range(900_000, 900_003)


def make(rng: random.Random, level: int) -> Draft:
    """One information-exchange problem at `level` (1-3) with its facts dealt to two agents."""
    for _ in range(MAX_TRIES):
        name = rng.choice(sorted(TEMPLATES))
        facts, question, answer, program = TEMPLATES[name](rng, level, rng.choice(NAMES))
        fact_numbers = [numbers(f) for f in facts]
        if len(set().union(*fact_numbers)) != sum(map(len, fact_numbers)):
            continue  # a number repeated across facts would let one agent stand in for another
        asker_gets = rng.sample(range(len(facts)), rng.randint(1, len(facts) - 1))
        agents = deal(facts, question, asker_gets)
        if agents_lacking(agents, numbers(program)):
            return Draft(text=" ".join([*facts, question]), answer=str(answer), grader="numeric",
                         program=program,
                         meta={"template": name, "agents": agents, "question": question,
                               "facts": len(facts)})
    raise AssertionError("no information-exchange draft in 100 tries")  # distinct numbers always deal
