"""Number variants of compiled worked problems: the same story with new numbers and the answer
its own program computes, so a few thousand real problems teach more than their own numbers.

A compiled problem (`agentrt.data_synth.worked`) carries a straight-line program whose literals
are the question's numbers and a few constants (60 minutes, 100 percent, 2 for "twice"). A
variant replaces some of the question's numbers, in the text and in the program alike, and
recomputes every step exactly (fractions, never `eval`). It is kept only when it stays the same
kind of problem: each step that was whole is still whole, each that was not negative is still
not negative, the answer differs from the original and stays below a bound. Percentages stay
between 1 and 99, money keeps its cents, round numbers stay round.

The danger is a number that means two things, since the program only holds values: a question
number or a program literal equal to a result, or to a result rounded ("4 friends" and 4
cookies left each; 8 bills out of 44 / 5 = 8.8 and $8 a day), two results that are equal
(18 sets and $18 of cost, linked by value when the program was compiled), a constant the
question gives in words (`twice`, `Monday to Friday`) equal to a number it writes, or a result
the solution computed in words and the program holds as a number. Problems where any of these
can happen are not varied, nor those whose program reads a question number more than twice
(a rule the question states in words: $2, $4, $8, $16, "and so on"); numbers the program
cannot have read (`2nd`, `3:30`, `1/2`) and the values 0 and 1 are never changed. What is left
unchecked is the story's sense (a sentence that says "all four beds" of beds whose count
changed). Measured on GSM8K train, with a hand read of variants, in docs/DATA.md.
`verified_variants` runs every variant's program in the sandbox and drops what overlaps a test
set, like any compiled source. This module knows programs, question text and
the sandbox tool; not the runtime's prompts or traces.
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from typing import Any

from agentrt.core.errors import ParseError
from agentrt.core.types import Problem
from agentrt.data_synth.decontaminate import decontaminate
from agentrt.data_synth.worked import WorkedReport, verify_programs
from agentrt.eval.arith import evaluate_arithmetic

__all__ = ["number_variants", "verified_variants", "run_program", "question_numbers",
           "VARIANT_SOURCE"]

VARIANT_SOURCE = "variant"
_NUM = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")
_STEP = re.compile(r"^([a-z_][a-z0-9_]*) = (.+)$")
_PRINT = re.compile(r"^print\(\s*([a-z_][a-z0-9_]*)\s*\)$")
_LITERAL = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])")
_MAX_ANSWER = 10_000_000
# Values a program may hold that the question gives in words or takes for granted, with the
# words that give them. A program literal above 1 that is neither a question number nor one of
# these with one of its words in the question is taken for a result written in (a chain the
# compiler could not link, `80 / 2 / 60` written as `2 / 3`): such a program is never varied.
# A question number equal to one of these is changed only when none of its words appears.
_WORDS = {
    2: "two twice double half pair couple both second weekend saturday sunday",
    3: "three triple thrice third yard", 4: "four quarter fourth quadruple",
    5: "five fifth weekday monday friday", 6: "six sixth", 7: "seven week",
    8: "eight eighth", 9: "nine ninth", 10: "ten tenth decade dime", 11: "eleven",
    12: "twelve dozen month year foot feet inch", 13: "thirteen", 14: "fourteen",
    15: "fifteen", 16: "sixteen ounce pound", 20: "twenty score", 24: "day hour",
    30: "thirty month", 31: "month", 36: "yard", 40: "forty", 50: "fifty",
    52: "week year", 60: "sixty hour minute", 100: "hundred percent cent meter century",
    365: "year day", 1000: "thousand kilo gram liter meter milli",
}
_CONSTANT_WORDS = {Fraction(v): tuple(w.split()) for v, w in _WORDS.items()}
_TRIES = 24


@dataclass(frozen=True)
class _Occurrence:
    start: int
    end: int
    value: Fraction
    decimals: int
    commas: bool
    percent: bool
    free: bool  # a plain number the program may have read (not `2nd`, `3:30`, `1/2`)


def question_numbers(text: str) -> list[_Occurrence]:
    """Every number written with digits in a question, with how it is written."""
    out = []
    for m in _NUM.finditer(text):
        raw = m.group(0)
        before, after = text[max(0, m.start() - 1):m.start()], text[m.end():m.end() + 1]
        free = not (before.isalnum() or before in "/:." or after.isalpha() or after in "/:"
                    or (after == "." and text[m.end() + 1:m.end() + 2].isdigit()))
        tail = text[m.end():m.end() + 9].lstrip().lower()
        percent = tail.startswith(("%", "percent"))
        frac = raw.replace(",", "").partition(".")[2]
        out.append(_Occurrence(m.start(), m.end(), Fraction(raw.replace(",", "")),
                               len(frac), "," in raw, percent, free))
    return out


def run_program(program: str, values: dict[Fraction, Fraction] | None = None
                ) -> list[Fraction] | None:
    """Each step's exact value, then the printed one, with literals replaced by `values`;
    None when the program is not straight-line arithmetic or divides by zero."""
    values = values or {}
    env: dict[str, Fraction] = {}
    lines = [line.strip() for line in program.strip().splitlines() if line.strip()]
    if not lines or not (printed := _PRINT.match(lines[-1])):
        return None
    out = []
    for line in lines[:-1]:
        m = _STEP.match(line)
        if m is None:
            return None

        def literal(lit: re.Match) -> str:
            v = Fraction(lit.group(0))
            return _exact(values.get(v, v))

        expr = _LITERAL.sub(literal, m.group(2))
        expr = re.sub(r"[a-z_][a-z0-9_]*", lambda n: _exact(env[n.group(0)])
                      if n.group(0) in env else n.group(0), expr)
        try:
            value, _ = evaluate_arithmetic(expr, decimals=True)
        except (ParseError, ZeroDivisionError):
            return None
        env[m.group(1)] = value
        out.append(value)
    name = printed.group(1)
    return out + [env[name]] if name in env else None


def _exact(v: Fraction) -> str:
    return f"({v.numerator}/{v.denominator})" if v.denominator != 1 else f"({v.numerator})"


def _draw(occ: _Occurrence, rng: random.Random) -> Fraction:
    """A new value written like `occ`: same decimals, percent in 1-99, round stays round."""
    scale = 10 ** occ.decimals
    units = int(occ.value * scale)
    step = next((s for s in (100, 50, 10, 5) if units % s == 0 and units >= 2 * s), 1)
    lo, hi = max(2, units // 2), max(units * 2, units + 4)
    if occ.percent:
        lo, hi = max(lo, 1), min(hi, 99 * scale)
    lo_k, hi_k = -(-lo // step), hi // step
    if hi_k < lo_k:
        return occ.value
    return Fraction(rng.randint(lo_k, hi_k) * step, scale)


def _written(value: Fraction, occ: _Occurrence) -> str:
    """`value` written like `occ`: its decimals (more if the value needs them), its commas."""
    exact = _answer(value)
    places = max(occ.decimals, len(exact.partition(".")[2]))
    text = f"{float(value):.{places}f}" if places else exact
    if occ.commas:
        whole, dot, frac = text.partition(".")
        text = f"{int(whole):,}{dot}{frac}"
    return text


def _literals(program: str) -> Counter[Fraction]:
    """How many times each number literal appears in the program's steps."""
    body = "\n".join(line.partition("=")[2] for line in program.splitlines() if " = " in line)
    return Counter(Fraction(x) for x in _LITERAL.findall(body))


def _stated_results(working: str) -> list[Fraction]:
    """The numbers a worked solution states as results (`20/2 = 10`), in order."""
    return [Fraction(raw.replace(",", "").rstrip("."))
            for raw in re.findall(r"=\s*\$?(\d[\d,]*(?:\.\d+)?)", working)]


def _computes(program: str) -> bool:
    """Whether every step computes something: a step that only copies a number (`step1 = 95`,
    the answer found in the question) would be varied into a wrong answer."""
    return all(re.search(r"[-+*/]", line.partition(" = ")[2].lstrip("-"))
               for line in program.splitlines() if " = " in line)


def _keeps_kind(old: list[Fraction], new: list[Fraction]) -> bool:
    for a, b in zip(old, new):
        if a.denominator == 1 and b.denominator != 1:
            return False
        if a >= 0 > b or (a > 0 and b == 0):
            return False
    return new[-1] != old[-1] and abs(new[-1]) < _MAX_ANSWER


def number_variants(problem: Problem, k: int, *, seed: int = 0) -> list[Problem]:
    """Up to `k` variants of a compiled problem (`meta["program"]`), different from each other.

    Each variant changes every question number the program reads (see the module docstring
    for which), keeps the problem's grader and family, and records in `meta` the original's
    id (`variant_of`) and the numbers changed. Fewer than `k` (or none) come back when draws
    keep breaking the checks.

    Example:
        >>> p = Problem(id="w-1", text="Ann has 12 apples and eats 4. How many are left?",
        ...             answer="8", grader="numeric",
        ...             meta={"program": "left = 12 - 4\\nprint(left)"})
        >>> v = number_variants(p, 1, seed=3)[0]
        >>> v.text != p.text and v.meta["variant_of"] == "w-1"
        True
    """
    program = str(problem.meta.get("program", "") or "")
    original = run_program(program)
    if original is None or k <= 0 or not _computes(program):
        return []
    occs = question_numbers(problem.text)
    used = _literals(program)
    given = {o.value for o in occs}
    words = set(re.findall(r"[a-z]+", problem.text.lower()))
    worded = {v for v, triggers in _CONSTANT_WORDS.items()
              if any(w.startswith(t) for w in words for t in triggers)
              or (v == 100 and "%" in problem.text)}
    if any(v not in given and v > 1 and v not in worded for v in used):
        return []  # a result written in, or a constant the question does not explain
    frozen = {o.value for o in occs if not o.free} | worded
    changeable = sorted({o.value for o in occs if o.free and o.value in used
                         and o.value > 1 and o.value not in frozen})
    stated = _stated_results(str(problem.meta.get("working", "") or ""))
    results = set(original) | set(stated)
    results |= {Fraction(f(r)) for r in results if r.denominator != 1
                for f in (math.floor, math.ceil)}  # 8 bills out of 44 / 5 = 8.8
    repeated = max((used[v] for v in changeable), default=0)
    if not changeable or results & (given | set(used)) or len(set(stated)) < len(stated) \
            or len(set(original[:-1])) < len(original) - 1 or repeated > 2:
        return []  # a number that is two things at once: the program may hold either
    first = {v: next(o for o in occs if o.value == v and o.free) for v in changeable}
    others = {o.value for o in occs} - set(changeable)
    rng = random.Random(f"{problem.id}:{seed}")
    out: list[Problem] = []
    seen = {problem.text}
    for _ in range(_TRIES * k):
        if len(out) >= k:
            break
        new = {v: _draw(first[v], rng) for v in changeable}
        if len(set(new.values())) < len(new) or set(new.values()) & others \
                or all(new[v] == v for v in changeable):
            continue
        steps = run_program(program, new)
        if steps is None or not _keeps_kind(original, steps):
            continue
        text = _rewrite(problem.text, occs, new)
        if text in seen:
            continue
        seen.add(text)
        varied = _reprogram(program, new)
        out.append(problem.model_copy(update={
            "id": f"{problem.id}-v{len(out) + 1}", "text": text, "answer": _answer(steps[-1]),
            "meta": {**problem.meta, "program": varied,
                     "working": _working(varied, steps), "variant_of": problem.id,
                     "changed": {str(a): str(b) for a, b in new.items() if a != b},
                     "source": f"{problem.meta.get('source', problem.family)}-{VARIANT_SOURCE}"}}))
    return out


def _rewrite(text: str, occs: list[_Occurrence], new: dict[Fraction, Fraction]) -> str:
    parts, last = [], 0
    for o in occs:
        if o.free and o.value in new:
            parts += [text[last:o.start], _written(new[o.value], o)]
            last = o.end
    return "".join(parts) + text[last:]


def _reprogram(program: str, new: dict[Fraction, Fraction]) -> str:
    def literal(m: re.Match) -> str:
        v = Fraction(m.group(0))
        if v not in new:
            return m.group(0)
        return _answer(new[v])

    lines = []
    for line in program.splitlines():
        name, eq, expr = line.partition(" = ")
        lines.append(f"{name}{eq}{_LITERAL.sub(literal, expr)}" if eq else line)
    return "\n".join(lines)


def _answer(value: Fraction) -> str:
    """A value as a number literal: exact where it is a short decimal, else to 6 places."""
    if value.denominator == 1:
        return str(value.numerator)
    for places in range(1, 7):
        if (value * 10 ** places).denominator == 1:
            return f"{float(value):.{places}f}"
    return f"{float(value):.6f}".rstrip("0").rstrip(".")


def _working(program: str, steps: list[Fraction]) -> str:
    """The variant's fast answer: each named step of its program with the value `run_program`
    gave it, then the final answer (the last value)."""
    lines = [line for line in program.splitlines() if " = " in line]
    shown = [f"{line} = {_answer(v)}" for line, v in zip(lines, steps)]
    return "\n".join(shown + [f"Final answer: {_answer(steps[-1])}"])


def verified_variants(problems: list[Problem], k: int, *, seed: int, index: Any,
                      keep: Any = None, progress: Any = None) -> tuple[list[Problem], dict]:
    """Up to `k` number variants of each problem, run in the sandbox and decontaminated.

    Args:
        problems: compiled problems (`agentrt.data_synth.worked`).
        k: variants per problem.
        seed: draws; the same seed gives the same variants.
        index: the test sets to decontaminate against
            (`agentrt.data_synth.decontaminate.build_index`).
        keep: a predicate a variant must pass besides (e.g. not a held-out problem's text).
        progress: called with (done, total) while programs run.

    Returns:
        The kept variants and a report per source (`<source>-variant`): the `WorkedReport`
        fields (`rows` = variants drawn) plus `varied` (problems that gave at least one)
        and `of` (problems of that source offered).
    """
    made = [v for p in problems for v in number_variants(p, k, seed=seed)
            if keep is None or keep(v)]
    kept: list[Problem] = []
    reports: dict[str, Any] = {}
    for source in sorted({str(v.meta["source"]) for v in made}):
        mine = [v for v in made if v.meta["source"] == source]
        report = WorkedReport(source=source, rows=len(mine))
        clean, _removed, found = decontaminate(mine, index)
        report.contaminated = found.removed
        kept += verify_programs(clean, report, progress=progress)
        base = source.removesuffix(f"-{VARIANT_SOURCE}")
        reports[source] = {**report.model_dump(),
                           "varied": len({v.meta["variant_of"] for v in mine}),
                           "of": sum(1 for p in problems
                                     if str(p.meta.get("source", p.family)) == base)}
    return kept, reports
