"""Boolean expressions and small deduction puzzles.

Level 1 evaluates a boolean expression of three values with not/and/or; level 2 one of five
values, or a chain of three truth-tellers and liars; level 3 orders four or five people by
height from shuffled comparisons (exactly one order fits; the program finds it by brute force),
or a chain of five truth-tellers and liars. Answers are "True"/"False", "Yes"/"No" or a name,
graded by `exact`.
"""

from __future__ import annotations

import itertools
import random

from agentrt.data_synth.generators.base import NAMES, Draft

__all__ = ["make"]

_ORDER_PROGRAM = '''from itertools import permutations

people = {people}
taller = {facts}  # (taller, shorter)
for order in permutations(people):  # tallest first
    if all(order.index(a) < order.index(b) for a, b in taller):
        print(order[{position}])
        break
'''

_LIAR_PROGRAM = '''truthful = {first}  # does {first_name} tell the truth?
for says_truthful in {claims}:  # each person's claim about the one before
    truthful = truthful == says_truthful
print("Yes" if truthful else "No")
'''


def _bool_expr(rng: random.Random, leaves: int) -> str:
    if leaves == 1:
        value = rng.choice(("True", "False"))
        return f"not {value}" if rng.random() < 0.3 else value
    left = rng.randint(1, leaves - 1)
    a, b = _bool_expr(rng, left), _bool_expr(rng, leaves - left)
    if rng.random() < 0.4 and leaves > 2:
        a = f"({a})"
    if rng.random() < 0.4 and leaves - left > 1:
        b = f"({b})"
    expr = f"{a} {rng.choice(('and', 'or'))} {b}"
    return f"not ({expr})" if rng.random() < 0.2 else expr


def _boolean(rng: random.Random, leaves: int) -> Draft:
    expr = _bool_expr(rng, leaves)
    answer = str(_eval_bool(expr))
    text = f"Evaluate the boolean expression: {expr}. Answer True or False."
    return Draft(text=text, answer=answer, grader="exact", program=f"print({expr})", meta={"kind": "boolean"})


def _eval_bool(expr: str) -> bool:
    """Evaluate our own generated not/and/or expression with the usual precedence (no eval)."""
    tokens = expr.replace("(", " ( ").replace(")", " ) ").split()
    pos = 0

    def parse_or() -> bool:
        nonlocal pos
        value = parse_and()
        while pos < len(tokens) and tokens[pos] == "or":
            pos += 1
            rhs = parse_and()
            value = value or rhs
        return value

    def parse_and() -> bool:
        nonlocal pos
        value = parse_not()
        while pos < len(tokens) and tokens[pos] == "and":
            pos += 1
            rhs = parse_not()
            value = value and rhs
        return value

    def parse_not() -> bool:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "not":
            return not parse_not()
        if tok == "(":
            value = parse_or()
            pos += 1  # ")"
            return value
        return tok == "True"

    return parse_or()


def _liars(rng: random.Random, n: int) -> Draft:
    people = rng.sample(NAMES, n)
    first = rng.random() < 0.5
    claims = [rng.random() < 0.5 for _ in range(n - 1)]
    lines = [f"{people[0]} {'tells the truth' if first else 'lies'}."]
    truthful = first
    for prev, who, says in zip(people, people[1:], claims):
        lines.append(f"{who} says {prev} {'tells the truth' if says else 'lies'}.")
        truthful = truthful == says
    text = " ".join(lines) + f" Does {people[-1]} tell the truth? Answer Yes or No."
    program = _LIAR_PROGRAM.format(first=first, first_name=people[0], claims=claims)
    return Draft(text=text, answer="Yes" if truthful else "No", grader="exact", program=program,
                 meta={"kind": "liars"})


def _consistent(people: list[str], facts: list[tuple[str, str]]) -> list[tuple[str, ...]]:
    return [order for order in itertools.permutations(people)
            if all(order.index(a) < order.index(b) for a, b in facts)]


def _ordering(rng: random.Random, n: int) -> Draft:
    people = rng.sample(NAMES, n)  # tallest first
    pairs = [(people[i], people[j]) for i in range(n) for j in range(i + 1, n)]
    rng.shuffle(pairs)
    facts: list[tuple[str, str]] = []
    for pair in pairs:
        facts.append(pair)
        if len(_consistent(people, facts)) == 1:
            break
    shown = sorted(people)
    position = rng.choice((0, -1, 1)) if n > 3 else rng.choice((0, -1))
    ask = {0: "the tallest", -1: "the shortest", 1: "the second tallest"}[position]
    sentences = " ".join(f"{a} is taller than {b}." for a, b in facts)
    text = f"{', '.join(shown[:-1])} and {shown[-1]} compare their heights. {sentences} Who is {ask}?"
    program = _ORDER_PROGRAM.format(people=shown, facts=facts, position=position)
    return Draft(text=text, answer=people[position], grader="exact", program=program,
                 meta={"kind": "ordering"})


def make(rng: random.Random, level: int) -> Draft:
    """Draw one logic problem at `level`."""
    if level == 1:
        return _boolean(rng, 3)
    if level == 2:
        return _boolean(rng, 5) if rng.random() < 0.5 else _liars(rng, 3)
    return _ordering(rng, rng.choice((4, 5))) if rng.random() < 0.6 else _liars(rng, 5)
