"""Arithmetic word problems from ten templates: shopping, travel, sharing, ages, work, savings,
baking, garden, school and fuel.

Each template picks its numbers so the answer is a whole number, adds steps with the level
(one or two operations at level 1, up to four or five at level 3) and writes a solution
program that names its quantities and prints the answer.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from agentrt.data_synth.generators.base import NAMES, Draft

__all__ = ["make", "TEMPLATES"]

Made = tuple[str, int, str]


def _shopping(rng: random.Random, level: int, who: str) -> Made:
    q1, p1, q2, p2 = rng.randint(2, 9), rng.randint(2, 15), rng.randint(2, 9), rng.randint(1, 12)
    total = q1 * p1 + q2 * p2
    text = f"{who} buys {q1} notebooks at ${p1} each and {q2} pens at ${p2} each."
    prog = f"notebooks = {q1} * {p1}\npens = {q2} * {p2}\ntotal = notebooks + pens\n"
    if level == 1:
        return text + f" How many dollars does {who} spend?", total, prog + "print(total)"
    if level == 2:
        bill = (total // 10 + 1 + rng.randint(0, 3)) * 10
        return (text + f" {who} pays with a ${bill} bill. How much change, in dollars, does {who} get?",
                bill - total, prog + f"print({bill} - total)")
    pct = rng.choice((10, 20, 25, 50))
    bag = (-total) % (100 // math.gcd(pct, 100))
    bag_text = f" and a bag for ${bag}" if bag else ""
    total += bag
    text = (f"{who} buys {q1} notebooks at ${p1} each, {q2} pens at ${p2} each{bag_text}. The shop takes "
            f"{pct}% off the whole bill. How many dollars does {who} pay?")
    prog = f"total = {q1} * {p1} + {q2} * {p2} + {bag}\nprint(total - total * {pct} // 100)"
    return text, total - total * pct // 100, prog


def _travel(rng: random.Random, level: int, who: str) -> Made:
    v1, t1 = rng.randint(4, 12) * 5, rng.randint(2, 6)
    if level == 1:
        return (f"{who} drives at {v1} km/h for {t1} hours. How many kilometers does {who} drive?",
                v1 * t1, f"print({v1} * {t1})")
    v2, t2 = rng.randint(4, 12) * 5, rng.randint(1, 5)
    dist = v1 * t1 + v2 * t2
    text = f"A train runs at {v1} km/h for {t1} hours, then at {v2} km/h for {t2} hours."
    if level == 2:
        return (text + " How many kilometers does it cover in total?", dist,
                f"first = {v1} * {t1}\nsecond = {v2} * {t2}\nprint(first + second)")
    # a second leg that makes the average speed a whole number (v = v1, t = t1 always qualifies)
    v2, t2 = rng.choice([(v, t) for v in range(20, 65, 5) for t in range(1, 7)
                         if (v1 * t1 + v * t) % (t1 + t) == 0])
    dist = v1 * t1 + v2 * t2
    text = f"A train runs at {v1} km/h for {t1} hours, then at {v2} km/h for {t2} hours."
    return (text + " What is its average speed for the whole trip, in km/h?", dist // (t1 + t2),
            f"distance = {v1} * {t1} + {v2} * {t2}\nhours = {t1} + {t2}\nprint(distance // hours)")


def _sharing(rng: random.Random, level: int, who: str) -> Made:
    k, each = rng.randint(3, 8), rng.randint(3, 15)
    if level == 1:
        n = k * each
        return (f"{who} shares {n} stickers equally among {k} friends. How many stickers does each friend get?",
                each, f"print({n} // {k})")
    kept = rng.randint(2, 12)
    n = k * each + kept
    if level == 2:
        return (f"{who} has {n} stickers, keeps {kept} and shares the rest equally among {k} friends. "
                "How many stickers does each friend get?", each, f"print(({n} - {kept}) // {k})")
    rest = n + (n % 2)  # after giving away a third, two thirds must be a whole number
    n3 = 3 * rest // 2
    kept = rest - k * each
    return (f"{who} has {n3} stickers and gives a third of them to a sister. {who} keeps {kept} of the rest "
            f"and shares the others equally among {k} friends. How many stickers does each friend get?", each,
            f"rest = {n3} - {n3} // 3\nprint((rest - {kept}) // {k})")


def _ages(rng: random.Random, level: int, who: str) -> Made:
    other = rng.choice([n for n in NAMES if n != who])
    b, d, y = rng.randint(4, 30), rng.randint(2, 25), rng.randint(2, 15)
    if level == 1:
        return (f"{who} is {d} years older than {other}, who is {b}. How old will {who} be in {y} years?",
                b + d + y, f"print({b} + {d} + {y})")
    if level == 2:
        total = (b + d + y) + (b + y)
        return (f"{who} is {d} years older than {other}. In {y} years the sum of their ages will be {total}. "
                f"How old is {other} now?", b, f"now_sum = {total} - 2 * {y}\nprint((now_sum - {d}) // 2)")
    m = rng.randint(2, 5)
    return (f"{who} is {m} times as old as {other}, and together they are {b * (m + 1)} years old. "
            f"How old will {who} be in {y} years?", m * b + y,
            f"younger = {b * (m + 1)} // ({m} + 1)\nprint({m} * younger + {y})")


def _work(rng: random.Random, level: int, who: str) -> Made:
    r, h = rng.randint(3, 20), rng.randint(2, 9)
    if level == 1:
        return (f"{who} packs {r} boxes an hour. How many boxes does {who} pack in {h} hours?", r * h,
                f"print({r} * {h})")
    if level == 2:
        r2 = rng.randint(3, 20)
        return (f"{who} packs {r} boxes an hour and a coworker packs {r2} boxes an hour. Working together, "
                f"how many boxes do they pack in {h} hours?", (r + r2) * h, f"print(({r} + {r2}) * {h})")
    a, b = rng.choice(((3, 6), (4, 12), (6, 12), (10, 15), (12, 24), (20, 30), (6, 3), (15, 10), (5, 20), (9, 18)))
    return (f"{who} can paint a fence alone in {a} hours, and a friend can paint it alone in {b} hours. "
            "How many hours do they take working together?", a * b // (a + b),
            f"from fractions import Fraction\nprint(1 / (Fraction(1, {a}) + Fraction(1, {b})))")


def _savings(rng: random.Random, level: int, who: str) -> Made:
    s, w, h = rng.randint(5, 40), rng.randint(3, 12), rng.randint(10, 90)
    if level == 1:
        return (f"{who} has ${h} and saves ${s} every week. How many dollars will {who} have after {w} weeks?",
                h + s * w, f"print({h} + {s} * {w})")
    cost = h + s * w - rng.randint(0, s - 1)
    spend = rng.randint(1, s - 1) if level == 3 else 0
    net = s - spend
    weeks = -(-(cost - h) // net)
    extra = f" and spends ${spend} of it on snacks" if spend else ""
    return (f"{who} has ${h} and earns ${s} every week{extra}. How many weeks until {who} has at least ${cost} "
            "for a bike?", weeks, f"import math\nprint(math.ceil(({cost} - {h}) / ({s} - {spend})))")


def _baking(rng: random.Random, level: int, who: str) -> Made:
    per, batches = rng.randint(2, 6), rng.randint(2, 9)
    if level == 1:
        return (f"A recipe needs {per} cups of flour per batch. How many cups does {who} need for "
                f"{batches} batches?", per * batches, f"print({per} * {batches})")
    cookies, guests, each = rng.randint(10, 30), rng.randint(8, 40), rng.randint(2, 4)
    need = -(-(guests * each) // cookies)
    if level == 2:
        return (f"One batch makes {cookies} cookies. {who} wants {each} cookies for each of {guests} guests. "
                "How many batches must be baked?", need,
                f"import math\nprint(math.ceil({guests} * {each} / {cookies}))")
    return (f"One batch makes {cookies} cookies and needs {per} cups of flour. {who} wants {each} cookies for "
            f"each of {guests} guests and bakes only whole batches. How many cups of flour are needed?",
            need * per,
            f"import math\nbatches = math.ceil({guests} * {each} / {cookies})\nprint(batches * {per})")


def _garden(rng: random.Random, level: int, who: str) -> Made:
    length, width = rng.randint(5, 40), rng.randint(3, 25)
    if level == 1:
        return (f"{who}'s garden is a rectangle {length} m long and {width} m wide. How many meters of fence go "
                "around it?", 2 * (length + width), f"print(2 * ({length} + {width}))")
    side = rng.randint(1, min(length, width) - 1)
    if level == 2:
        return (f"A rectangular lawn is {length} m by {width} m. A square flower bed {side} m on each side is cut "
                "out of it. How many square meters of lawn are left?", length * width - side * side,
                f"print({length} * {width} - {side} * {side})")
    price, gate = rng.randint(3, 15), rng.randint(1, 3)
    return (f"A rectangular yard is {length} m by {width} m. Fencing costs ${price} per meter, and a {gate} m "
            "gate needs no fencing. How many dollars does the fence cost?", (2 * (length + width) - gate) * price,
            f"meters = 2 * ({length} + {width}) - {gate}\nprint(meters * {price})")


def _school(rng: random.Random, level: int, who: str) -> Made:
    classes, size = rng.randint(3, 12), rng.randint(18, 32)
    students = classes * size
    if level == 1:
        return (f"A school has {classes} classes of {size} students. How many students are there?", students,
                f"print({classes} * {size})")
    pct = rng.choice((10, 20, 25, 50, 75))
    while students * pct % 100:
        size += 1
        students = classes * size
    bus = students * pct // 100
    text = f"A school has {classes} classes of {size} students, and {pct}% of the students ride the bus."
    if level == 2:
        return text + " How many students ride the bus?", bus, f"print({classes} * {size} * {pct} // 100)"
    seats = rng.randint(20, 50)
    return (text + f" Each bus holds {seats} students. How many buses are needed?", -(-bus // seats),
            f"import math\nriders = {classes} * {size} * {pct} // 100\nprint(math.ceil(riders / {seats}))")


def _fuel(rng: random.Random, level: int, who: str) -> Made:
    per100, hundreds = rng.randint(4, 12), rng.randint(1, 9)
    km = hundreds * 100
    if level == 1:
        return (f"{who}'s car uses {per100} liters of fuel per 100 km. How many liters does it use for {km} km?",
                per100 * hundreds, f"print({per100} * {km} // 100)")
    price = rng.randint(1, 3)
    cost = per100 * hundreds * price
    if level == 2:
        return (f"A car uses {per100} liters per 100 km and fuel costs ${price} a liter. How many dollars does "
                f"a {km} km trip cost?", cost, f"print({per100} * {km} // 100 * {price})")
    back = rng.randint(1, 4) * 100
    return (f"A car uses {per100} liters per 100 km and fuel costs ${price} a liter. {who} drives {km} km out "
            f"and {back} km back by a shorter road. How many dollars does the fuel cost?",
            per100 * (km + back) // 100 * price,
            f"liters = {per100} * ({km} + {back}) // 100\nprint(liters * {price})")


TEMPLATES: dict[str, Callable[[random.Random, int, str], Made]] = {
    "shopping": _shopping, "travel": _travel, "sharing": _sharing, "ages": _ages, "work": _work,
    "savings": _savings, "baking": _baking, "garden": _garden, "school": _school, "fuel": _fuel,
}


def make(rng: random.Random, level: int) -> Draft:
    """Draw one word problem at `level` from a randomly chosen template."""
    name = rng.choice(sorted(TEMPLATES))
    who = rng.choice(NAMES)
    text, answer, program = TEMPLATES[name](rng, level, who)
    return Draft(text=text, answer=str(answer), grader="numeric", program=program, meta={"template": name})
