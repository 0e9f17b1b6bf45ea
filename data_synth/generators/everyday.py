"""Everyday math questions as people type them: short, in many wordings.

Percentages (of a number, discounts, tips and tax, percent change, what percent), speed,
distance and time, unit prices, fractions of amounts, averages, powers and roots, ages, ratio
splits, simple interest, and calculations spelled out in words ("25 divided by 5, plus 3 times
4"). Each topic has several phrasings, so a model trained on them meets the words, not one
template. Level 1 is one operation, level 2 two, level 3 three or more. Answers are exact
(fractions throughout, terminating decimals); the program names its steps the way GSM8K's
compiled solutions do and prints the answer.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from fractions import Fraction

from agentrt.data_synth.generators.base import NAMES, Draft, is_terminating, number

__all__ = ["make", "TOPICS"]

Made = tuple[str, Fraction, list[str]]  # text, answer, program lines before the print
_ITEMS = ("shirt", "jacket", "pair of shoes", "lamp", "backpack", "book", "bike", "game",
          "phone case", "coffee maker", "watch", "chair")


def _money(v: Fraction) -> str:
    """$25, $12.50: prices as shops write them."""
    return f"${v.numerator}" if v.denominator == 1 else f"${float(v):.2f}"


def _n(v: Fraction | int) -> str:
    return number(Fraction(v))


def _pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def _percent(rng: random.Random, level: int) -> Made:
    p = rng.choice((5, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 80))
    whole = rng.randint(2, 60) * rng.choice((2, 4, 5, 10, 20))
    part = Fraction(p * whole, 100)
    if level == 1:
        text = _pick(rng, f"What is {p}% of {whole}?", f"Find {p} percent of {whole}.",
                     f"How much is {p}% of {whole}?", f"Calculate {p}% of {whole}.",
                     f"{p} percent of {whole} is what number?")
        return text, part, [f"part = {p} / 100 * {whole}"]
    if level == 2:
        text = _pick(rng, f"What percent of {whole} is {_n(part)}?",
                     f"{_n(part)} is what percentage of {whole}?",
                     f"What percentage of {whole} is {_n(part)}?")
        return text, Fraction(p), [f"share = {_n(part)} / {whole}", "percent = share * 100"]
    old = rng.randint(2, 20) * 20  # every listed percent of it is a whole number
    new = old + old * rng.choice((10, 20, 25, 40, 50, -10, -20, -25, -40)) // 100
    change = Fraction(new - old, old) * 100
    word = "increase" if new > old else "decrease"
    text = _pick(rng, f"A price goes from ${old} to ${new}. By what percent did it {word}?",
                 f"What is the percent {word} from {old} to {new}?",
                 f"The number of visitors went from {old} to {new}. What is the percentage "
                 f"{word}?")
    return text, abs(change), [f"change = {abs(new - old)}", f"percent = change / {old} * 100"]


def _shopping(rng: random.Random, level: int) -> Made:
    item = rng.choice(_ITEMS)
    price = Fraction(rng.randint(4, 60) * 5)
    p = rng.choice((10, 15, 20, 25, 30, 40, 50))
    off = price * p / 100
    if level == 1:
        text = _pick(rng, f"A {item} costs {_money(price)}. How much do you save with a {p}% "
                          f"discount?",
                     f"How much is {p}% off a {_money(price)} {item}, in dollars?")
        return text, off, [f"discount = {_n(price)} * {p} / 100"]
    if level == 2:
        text = _pick(rng, f"A {item} costs {_money(price)} and is on sale for {p}% off. What is "
                          f"the sale price?",
                     f"What do you pay for a {_money(price)} {item} after a {p}% discount?",
                     f"The {item} was {_money(price)}. It is now {p}% off. What does it cost "
                     f"now?")
        return text, price - off, [f"discount = {_n(price)} * {p} / 100",
                                   f"price = {_n(price)} - discount"]
    tax = rng.choice((5, 8, 10))
    total = (price - off) * (100 + tax) / 100
    if not is_terminating(total, 2):
        tax = 10
        total = (price - off) * (100 + tax) / 100
    text = _pick(rng, f"A {item} costs {_money(price)}. It is {p}% off, and then {tax}% sales "
                      f"tax is added. What is the final price?",
                 f"After a {p}% discount and {tax}% tax, what does a {_money(price)} {item} "
                 f"cost?")
    return text, total, [f"discount = {_n(price)} * {p} / 100", f"sale = {_n(price)} - discount",
                         f"tax = sale * {tax} / 100", "total = sale + tax"]


def _tip(rng: random.Random, level: int) -> Made:
    bill = Fraction(rng.randint(6, 40) * 5)
    p = rng.choice((10, 15, 18, 20, 25))
    tip = bill * p / 100
    if level == 1:
        text = _pick(rng, f"What is a {p}% tip on a {_money(bill)} bill?",
                     f"How much should I tip if the meal is {_money(bill)} and I leave {p}%?")
        return text, tip, [f"tip = {_n(bill)} * {p} / 100"]
    if level == 2:
        text = _pick(rng, f"Dinner costs {_money(bill)}. With a {p}% tip, what is the total?",
                     f"A meal is {_money(bill)} before a {p}% tip. How much is paid in all?")
        return text, bill + tip, [f"tip = {_n(bill)} * {p} / 100", f"total = {_n(bill)} + tip"]
    people = rng.choice((2, 4, 5))
    total = bill + tip
    text = _pick(rng, f"{people} friends share a {_money(bill)} bill and add a {p}% tip. How "
                      f"much does each pay?",
                 f"A {_money(bill)} dinner plus a {p}% tip is split evenly between {people} "
                 f"people. What is each share?")
    if not is_terminating(total / people, 2):
        return _tip(rng, 2)
    return text, total / people, [f"tip = {_n(bill)} * {p} / 100", f"total = {_n(bill)} + tip",
                                  f"share = total / {people}"]


def _travel(rng: random.Random, level: int) -> Made:
    unit = rng.choice(("miles", "kilometers", "km"))
    per = "miles per hour" if unit == "miles" else rng.choice(("km/h", "kilometers per hour"))
    v = rng.randint(3, 16) * 5
    t = Fraction(rng.randint(1, 10), rng.choice((1, 2, 2, 4)))
    d = v * t
    hours = _n(t)
    if level == 1:
        text = _pick(rng, f"If I drive {v} {per} for {hours} hours, how far do I go?",
                     f"A car travels at {v} {per} for {hours} hours. How many {unit} does it "
                     f"cover?",
                     f"How far do you get in {hours} hours at {v} {per}?")
        return text, d, [f"distance = {v} * {hours}"]
    if level == 2:
        text = _pick(rng, f"How long does it take to travel {_n(d)} {unit} at {v} {per}, in "
                          f"hours?",
                     f"A trip is {_n(d)} {unit}. At {v} {per}, how many hours does it take?")
        if not is_terminating(Fraction(d) / v, 2):
            return _travel(rng, 1)
        return text, Fraction(d) / v, [f"hours = {_n(d)} / {v}"]
    minutes = int(t * 60)
    if minutes % 60 == 0 or t * 60 != minutes:
        return _travel(rng, 1)
    text = _pick(rng, f"A train covers {_n(d)} {unit} in {minutes} minutes. What is its speed "
                      f"in {per}?",
                 f"What speed, in {per}, covers {_n(d)} {unit} in {minutes} minutes?")
    return text, Fraction(v), [f"hours = {minutes} / 60", f"speed = {_n(d)} / hours"]


def _unit_price(rng: random.Random, level: int) -> Made:
    thing = rng.choice(("apples", "pencils", "tickets", "eggs", "cans of soda", "notebooks",
                        "bottles of water", "oranges"))
    each = Fraction(rng.choice((25, 50, 75, 100, 125, 150, 200, 250)), 100)
    k = rng.choice((2, 3, 4, 5, 6, 8, 10))
    m = rng.choice((5, 7, 9, 12, 15, 20, 24))
    if level == 1:
        text = _pick(rng, f"{thing.capitalize()} cost {_money(each)} each. How much do {m} "
                          f"{thing} cost?",
                     f"One of the {thing} costs {_money(each)}. What do {m} of them cost?")
        return text, each * m, [f"cost = {_n(each)} * {m}"]
    if level == 2:
        text = _pick(rng, f"If {k} {thing} cost {_money(each * k)}, how much do {m} {thing} "
                          f"cost?",
                     f"{k} {thing} sell for {_money(each * k)}. What is the price of {m}?")
        return text, each * m, [f"each = {_n(each * k)} / {k}", f"cost = each * {m}"]
    budget = each * m + each * Fraction(rng.randint(0, 90), 100)
    budget = Fraction(int(budget * 4), 4)
    if budget < each:
        return _unit_price(rng, 1)
    can = int(budget / each)
    text = _pick(rng, f"{thing.capitalize()} cost {_money(each)} each. How many can you buy "
                      f"with {_money(budget)}?",
                 f"With {_money(budget)}, how many {thing} at {_money(each)} each can I buy?")
    return text, Fraction(can), [f"count = {_n(budget)} // {_n(each)}"]


def _fraction_of(rng: random.Random, level: int) -> Made:
    words = {(1, 2): "half", (1, 3): "a third", (1, 4): "a quarter", (3, 4): "three quarters",
             (2, 3): "two thirds", (1, 5): "a fifth", (2, 5): "two fifths"}
    (a, b), word = rng.choice(list(words.items()))
    whole = b * rng.randint(2, 30)
    part = Fraction(a * whole, b)
    if level == 1:
        text = _pick(rng, f"What is {word} of {whole}?", f"What is {a}/{b} of {whole}?",
                     f"How much is {word} of {whole}?")
        return text, part, [f"part = {whole} * {a} / {b}"]
    who = rng.choice(NAMES)
    if level == 2:
        text = _pick(rng, f"{who} had {whole} stickers and gave away {word} of them. How many "
                          f"are left?",
                     f"A tank holds {whole} liters. {word.capitalize()} of it is used. How many "
                     f"liters remain?")
        return text, whole - part, [f"used = {whole} * {a} / {b}", f"left = {whole} - used"]
    extra = rng.randint(2, 20)
    text = f"{who} had {whole} marbles, lost {word} of them, then found {extra} more. How many " \
           f"marbles does {who} have now?"
    return text, whole - part + extra, [f"lost = {whole} * {a} / {b}", f"left = {whole} - lost",
                                        f"now = left + {extra}"]


def _average(rng: random.Random, level: int) -> Made:
    k = 2 + level
    values = [rng.randint(1, 100) for _ in range(k)]
    rest = sum(values) % k
    values[-1] += (k - rest) % k if rng.random() < 0.7 else 0
    mean = Fraction(sum(values), k)
    if not is_terminating(mean, 2):
        values[-1] += (k - sum(values) % k) % k
        mean = Fraction(sum(values), k)
    listed = ", ".join(map(str, values[:-1])) + f" and {values[-1]}"
    text = _pick(rng, f"What is the average of {listed}?", f"Find the mean of {listed}.",
                 f"My test scores are {listed}. What is my average score?")
    return text, mean, [f"total = {' + '.join(map(str, values))}", f"average = total / {k}"]


def _powers(rng: random.Random, level: int) -> Made:
    if level == 1:
        a, b = rng.randint(2, 12), rng.choice((2, 3, 4, 5, 10)) if rng.random() < 0.5 else 2
        if a ** b > 10**7:
            b = 2
        text = _pick(rng, f"What is {a} to the power of {b}?", f"What is {a}^{b}?",
                     f"Calculate {a} raised to the {b}th power." if b > 3 else
                     f"What is {a} {'squared' if b == 2 else 'cubed'}?")
        return text, Fraction(a ** b), [f"value = {a} ** {b}"]
    r = rng.randint(2, 30)
    if level == 2:
        text = _pick(rng, f"What is the square root of {r * r}?", f"Find the square root of "
                                                                  f"{r * r}.",
                     f"What number times itself is {r * r}?")
        return text, Fraction(r), [f"root = {r * r} ** 0.5"]
    c = rng.randint(2, 9)
    text = f"What is the square root of {r * r} plus {c} squared?"
    return text, Fraction(r + c * c), [f"root = {r * r} ** 0.5", f"square = {c} ** 2",
                                       "value = root + square"]


def _spoken(rng: random.Random, level: int) -> Made:
    """A calculation in words, with commas or 'then' to say what goes first."""
    b, d = rng.randint(2, 12), rng.randint(2, 12)
    a, c = b * rng.randint(2, 15), rng.randint(2, 20)
    if level == 1:
        x, y = rng.randint(12, 300), rng.randint(2, 40)
        text, value, line = rng.choice((
            (f"What is {x} plus {y}?", x + y, f"value = {x} + {y}"),
            (f"What is {x} minus {y}?", x - y, f"value = {x} - {y}"),
            (f"What is {x} times {y}?", x * y, f"value = {x} * {y}"),
            (f"What is the product of {x} and {y}?", x * y, f"value = {x} * {y}"),
            (f"What is {y * b} divided by {b}?", y, f"value = {y * b} / {b}"),
            (f"What is the difference between {max(x, y)} and {min(x, y)}?", abs(x - y),
             f"value = {max(x, y)} - {min(x, y)}"),
            (f"What is twice {x}?", 2 * x, f"value = 2 * {x}"),
        ))
        return text, Fraction(value), [line]
    if level == 2:
        text, value, lines = rng.choice((
            (f"What is {a} divided by {b}, plus {c} times {d}?", Fraction(a, b) + c * d,
             [f"first = {a} / {b}", f"second = {c} * {d}", "value = first + second"]),
            (f"Add {a} and {c}, then multiply by {d}.", Fraction((a + c) * d),
             [f"total = {a} + {c}", f"value = total * {d}"]),
            (f"What is the sum of {a} and {c}, divided by {b}?", Fraction(a + c, b),
             [f"total = {a} + {c}", f"value = total / {b}"]),
            (f"Multiply {c} by {d} and subtract {b}.", Fraction(c * d - b),
             [f"product = {c} * {d}", f"value = product - {b}"]),
            (f"What is {c} times {d}, minus {a} divided by {b}?", c * d - Fraction(a, b),
             [f"first = {c} * {d}", f"second = {a} / {b}", "value = first - second"]),
            (f"What is half of {2 * a}, plus {c}?", Fraction(a + c),
             [f"half = {2 * a} / 2", f"value = half + {c}"]),
        ))
        if not is_terminating(value, 4):
            return _spoken(rng, 1)
        return text, value, lines
    e = rng.randint(2, 9)
    text = _pick(rng, f"Take {a}, divide it by {b}, add {c}, then multiply the result by {e}.",
                 f"What is ({a} divided by {b} plus {c}) times {e}?",
                 f"Start with {a}. Divide by {b}, add {c} and multiply by {e}. What do you get?")
    return text, (Fraction(a, b) + c) * e, [f"step1 = {a} / {b}", f"step2 = step1 + {c}",
                                            f"value = step2 * {e}"]


def _ages(rng: random.Random, level: int) -> Made:
    young, old = rng.sample(NAMES, 2)
    age, k = rng.randint(3, 15), rng.choice((2, 3, 4))
    if level == 1:
        text = f"{old} is {k} times as old as {young}. {young} is {age}. How old is {old}?"
        return text, Fraction(k * age), [f"age = {k} * {age}"]
    later = rng.randint(2, 20)
    if level == 2:
        text = f"{old} is {k} times as old as {young}, who is {age}. How old will {old} be in " \
               f"{later} years?"
        return text, Fraction(k * age + later), [f"now = {k} * {age}", f"later = now + {later}"]
    text = f"{old} is {k} times as old as {young}, who is {age}. What will their ages add up " \
           f"to in {later} years?"
    return text, Fraction(k * age + age + 2 * later), [
        f"old_now = {k} * {age}", f"old_later = old_now + {later}",
        f"young_later = {age} + {later}", "total = old_later + young_later"]


def _ratio(rng: random.Random, level: int) -> Made:
    a, b = rng.choice(((1, 2), (2, 3), (3, 4), (1, 3), (3, 5), (2, 5), (4, 5)))
    total = (a + b) * rng.randint(2, 40)
    one, two = rng.sample(NAMES, 2)
    big = Fraction(total * b, a + b)
    if level == 1:
        text = f"Split {total} in the ratio {a}:{b}. What is the larger part?"
        return text, big, [f"part = {total} / ({a} + {b})", f"larger = part * {b}"]
    text = _pick(rng, f"{one} and {two} share ${total} in the ratio {a}:{b}. How much more "
                      f"does {two} get than {one}?",
                 f"${total} is divided between {one} and {two} in the ratio {a} to {b}. What is "
                 f"the difference between their shares?")
    return text, big - Fraction(total * a, a + b), [
        f"part = {total} / ({a} + {b})", f"first = part * {a}", f"second = part * {b}",
        "difference = second - first"]


def _interest(rng: random.Random, level: int) -> Made:
    principal = rng.randint(2, 50) * 100
    r = rng.choice((2, 3, 4, 5, 6, 8, 10))
    years = rng.randint(1, 6)
    interest = Fraction(principal * r * years, 100)
    if level <= 2:
        text = _pick(rng, f"How much simple interest does ${principal} earn at {r}% per year "
                          f"for {years} years?",
                     f"I put ${principal} in an account paying {r}% simple interest a year. "
                     f"How much interest after {years} years?")
        return text, interest, [f"yearly = {principal} * {r} / 100",
                                f"interest = yearly * {years}"]
    text = f"${principal} is saved at {r}% simple interest per year. What is the balance after " \
           f"{years} years?"
    return text, principal + interest, [f"yearly = {principal} * {r} / 100",
                                        f"interest = yearly * {years}",
                                        f"balance = {principal} + interest"]


def _groups(rng: random.Random, level: int) -> Made:
    who = rng.choice(NAMES)
    box, each = rng.choice(("boxes", "bags", "crates", "packs", "shelves")), rng.randint(3, 24)
    thing = rng.choice(("apples", "cookies", "books", "marbles", "cards", "pencils"))
    n = rng.randint(2, 12)
    if level == 1:
        text = f"{who} has {n} {box} with {each} {thing} in each. How many {thing} is that?"
        return text, Fraction(n * each), [f"total = {n} * {each}"]
    used = rng.randint(1, n * each - 1)
    verb = {"apples": "eats", "cookies": "eats", "books": "gives away", "marbles": "loses",
            "cards": "trades away", "pencils": "gives away"}[thing]
    if level == 2:
        text = f"{who} has {n} {box} with {each} {thing} each. {who} {verb} {used}. How many " \
               f"{thing} are left?"
        return text, Fraction(n * each - used), [f"total = {n} * {each}", f"left = total - {used}"]
    friends = rng.choice((2, 3, 4))
    used = rng.randint(1, n * each - friends)
    left = n * each - used
    left -= left % friends
    used = n * each - left
    text = f"{who} has {n} {box} of {each} {thing}, {verb} {used}, and shares the rest equally " \
           f"among {friends} friends. How many does each friend get?"
    return text, Fraction(left, friends), [f"total = {n} * {each}", f"left = total - {used}",
                                           f"each = left / {friends}"]


TOPICS: dict[str, Callable[[random.Random, int], Made]] = {
    "percent": _percent, "shopping": _shopping, "tip": _tip, "travel": _travel,
    "unit_price": _unit_price, "fraction_of": _fraction_of, "average": _average,
    "powers": _powers, "spoken": _spoken, "ages": _ages, "ratio": _ratio,
    "interest": _interest, "groups": _groups,
}


def make(rng: random.Random, level: int) -> Draft:
    topic = rng.choice(sorted(TOPICS))
    text, answer, lines = TOPICS[topic](rng, level)
    name = lines[-1].split("=", 1)[0].strip()
    return Draft(text=text, answer=number(answer), grader="numeric",
                 program="\n".join([*lines, f"print({name})"]), meta={"topic": topic})
