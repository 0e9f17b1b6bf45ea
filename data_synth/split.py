"""Information-exchange problems: split a problem's facts between two agents.

A problem becomes a team task when no single agent sees every fact: the fact sentences are
dealt to two agents (`meta["agents"]` = `[{"role", "private"}, ...]`), the question goes to one
of them (the "asker", also kept as `meta["question"]`), and the problem's `text` stays the whole
problem, for a single agent that sees everything. The split is kept only when each agent's
private part lacks at least one number the solution uses, so the answer needs both.

`sentences(text)` splits prose into sentences without breaking decimals ("$1.50"), thousands
("1,200"), abbreviations ("Mr.", "a.m.", "e.g.", initials) or quoted speech. `split_text` turns
one problem text into (facts, question) or the reason it cannot be split; `deal` hands the facts
out. `gsm8k_infox` does this for a GSM8K file and counts every skipped row by reason; rows of
the train split also carry their worked solution compiled into a program
(`agentrt.data_synth.worked`), which the gold team states as its calculation.

This module knows nothing of generators, models or the team mode that reads the split.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.errors import ConfigError
from agentrt.core.types import Problem
from agentrt.data_synth.worked import Compiled, compile_solution
from agentrt.eval.benchmarks import BenchmarkLoad, RowError, resolve_data_dir

__all__ = ["ROLES", "SplitReport", "sentences", "numbers", "split_text", "deal", "agents_lacking",
           "gsm8k_infox", "solution_numbers"]

ROLES = ("asker", "informant")

# Words whose trailing period does not end a sentence (compared lower-case, without the period).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt ft vs etc e.g i.e a.m p.m no approx dept est inc ltd co corp "
    "jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun lb lbs oz in "
    "min hr hrs sec sq yd yds gal pt qt tbsp tsp ave blvd u.s u.k".split())
# Abbreviations that may end a sentence when the next word starts one ("... at 5 p.m. She ...").
_MAY_END = frozenset("etc a.m p.m lb lbs oz in min hr hrs sec ft yd yds gal pt qt".split())

_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?|(?<![\w\d])\.\d+")
_QUESTION_START = re.compile(
    r"^(how|what|which|who|whom|whose|when|where|why|find|calculate|compute|determine|if|in|after|"
    r"assuming|given|so|then|express|give|round|at|by)\b", re.I)


class SplitReport(BaseModel):
    """How many rows were read, split and skipped (by reason)."""

    read: int = 0
    split: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)


def _ends_sentence(text: str, start: int, end: int) -> bool:
    """Whether the punctuation run `text[start:end]` ends a sentence."""
    rest = text[end:]
    if rest and not rest[0].isspace():
        return False  # "1.50", "e.g.," or "?!" in the middle of a word
    after = rest.lstrip()
    if not after:
        return True
    if text[start] == "." and end - start == 1 or text[start:end].startswith("."):
        word = re.search(r"([A-Za-z][A-Za-z.]*)\.?$", text[:start + 1])
        token = (word.group(1) if word else "").rstrip(".").lower()
        if len(token) == 1 and token.isalpha() and text[start - 1].isupper():
            return False  # an initial: "J. K. Rowling"
        if token in ABBREVIATIONS and not (token in _MAY_END and after[0].isupper()
                                           and not text[start - 1].isdigit()):
            return False
    nxt = after[0]
    return nxt.isupper() or nxt.isdigit() or nxt in "\"'\u201c\u2018($"


def sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, each stripped; decimals, abbreviations and quotes
    stay inside their sentence.

    Example:
        >>> sentences('Mr. Lee paid $1.50 each. "Wow!" said Ann. How much in all?')
        ['Mr. Lee paid $1.50 each.', '"Wow!" said Ann.', 'How much in all?']
    """
    text = " ".join(text.split())
    out: list[str] = []
    begin = 0
    for m in _END.finditer(text):
        if _ends_sentence(text, m.start(), m.end()):
            piece = text[begin:m.end()].strip()
            if piece:
                out.append(piece)
            begin = m.end()
    tail = text[begin:].strip()
    if tail:
        out.append(tail)
    return out


def numbers(text: str) -> set[str]:
    """The numbers written in digits in `text`, normalised ("1,200" -> "1200", "2.50" -> "2.5")."""
    found: set[str] = set()
    for raw in _NUMBER.findall(text):
        value = raw.replace(",", "").lstrip("-")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        found.add(value.lstrip("0") or "0")
    return found


def solution_numbers(solution: str) -> set[str]:
    """The numbers a GSM8K worked solution computes with: those inside its `<<...>>` annotations,
    or, without annotations, every number before the final `####`."""
    body = solution.rsplit("####", 1)[0]
    calls = re.findall(r"<<([^>]*)>>", body)
    return set().union(*(numbers(c.split("=")[0]) for c in calls)) if calls else numbers(body)


def split_text(text: str) -> tuple[list[str], str] | str:
    """(fact sentences, question sentence) of a problem text, or why it cannot be split.

    The question is the last sentence; it must end with "?" or start like a question or an
    instruction ("How", "What", "Find", "If ..."). At least two fact sentences must come before it.
    """
    parts = sentences(text)
    if not parts:
        return "empty"
    question = parts[-1]
    if not (question.rstrip("\"'\u201d").endswith("?") or _QUESTION_START.match(question)):
        return "no question sentence"
    facts = parts[:-1]
    if len(facts) < 2:
        return "fewer than 2 fact sentences"
    return facts, question


def deal(facts: Sequence[str], question: str, asker_gets: Iterable[int]) -> list[dict[str, str]]:
    """The two agents' private parts: the facts whose indices are in `asker_gets` plus the
    question for the asker, the other facts for the informant (each in the original order)."""
    mine = set(asker_gets)
    asker = " ".join([f for i, f in enumerate(facts) if i in mine] + [f"Question: {question}"])
    informant = " ".join(f for i, f in enumerate(facts) if i not in mine)
    return [{"role": ROLES[0], "private": asker}, {"role": ROLES[1], "private": informant}]


def agents_lacking(agents: Sequence[dict[str, str]], used: set[str]) -> bool:
    """True when every agent's private part lacks at least one of the numbers in `used`."""
    return bool(used) and all(used - numbers(a["private"]) for a in agents)


def _candidate_splits(n: int) -> Iterable[list[int]]:
    """Candidate asker fact indices: alternating first (the last fact to the asker), then every
    other proper subset in a fixed order (up to 12 facts), so the result is deterministic."""
    alternating = [i for i in range(n) if (n - 1 - i) % 2 == 0]
    yield alternating
    if n <= 12:
        for mask in range(1, 2**n - 1):
            chosen = [i for i in range(n) if mask >> i & 1]
            if chosen != alternating:
                yield chosen


def split_problem(text: str, used: set[str]) -> list[dict[str, str]] | str:
    """Agents for one problem text whose solution uses the numbers `used`, or why not."""
    parsed = split_text(text)
    if isinstance(parsed, str):
        return parsed
    facts, question = parsed
    for asker_gets in _candidate_splits(len(facts)):
        agents = deal(facts, question, asker_gets)
        if all(a["private"] for a in agents) and agents_lacking(agents, used):
            return agents
    return "one agent sees every number the solution uses"


def _row_problem(row: dict[str, Any], split: str, index: int) -> Problem | str:
    question, answer = row.get("question"), row.get("answer")
    if not (isinstance(question, str) and question.strip() and isinstance(answer, str)
            and "####" in answer):
        return "malformed row"
    final = answer.rsplit("####", 1)[1].strip().replace(",", "")
    used = solution_numbers(answer) & numbers(question)
    agents = split_problem(question, used)
    if isinstance(agents, str):
        return agents
    facts, asked = split_text(question)  # type: ignore[misc]  # split_problem succeeded
    # A training row carries its worked solution compiled into a program, so the gold team
    # (agentrt.data_synth.team_teacher) states the real calculation, not just the answer.
    compiled = compile_solution(question, answer, final) if split == "train" else None
    program = {"program": compiled.program} if isinstance(compiled, Compiled) else {}
    return Problem(
        id=f"infox-gsm8k-{split}-{index}", text=f"{' '.join(sentences(question))}\n"
        "Give the final answer as a number.", answer=final, grader="numeric", family="infox:gsm8k",
        meta={"benchmark": "infox", "source": f"gsm8k:{split}", "agents": agents, "question": asked,
              "facts": len(facts), "solution_numbers": sorted(used), **program},
    )


def gsm8k_infox(data: Path | str | None = None, split: str = "test") -> tuple[BenchmarkLoad, SplitReport]:
    """GSM8K problems split sentence by sentence between two agents.

    Args:
        data: the benchmark data folder (default `$AGENTRT_DATA`, else `../shared/data`).
        split: "test" (held-out evaluation) or "train" (training problems).

    Returns:
        The split problems (ids `infox-gsm8k-<split>-<row index>`) with malformed rows, and the
        counts of rows read, split and skipped by reason.

    Raises:
        ConfigError: unknown split, or a missing folder or file.
    """
    if split not in ("test", "train"):
        raise ConfigError(f"unknown gsm8k split {split!r}; choose test or train")
    path = resolve_data_dir(data) / "gsm8k" / f"{split}.jsonl"
    if not path.is_file():
        raise ConfigError(f"benchmark file not found: {path}")
    load = BenchmarkLoad(spec="infox:gsm8k" + ("" if split == "test" else f":{split}"), path=str(path))
    report, skipped = SplitReport(), Counter()
    for index, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        report.read += 1
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            load.errors.append(RowError(source=str(path), row=index + 1, reason=f"invalid JSON: {e.msg}"))
            continue
        made = _row_problem(row if isinstance(row, dict) else {}, split, index)
        if isinstance(made, str):
            if made == "malformed row":
                load.errors.append(RowError(source=str(path), row=index + 1, reason="needs a question "
                                            "and an answer ending in '#### <number>'"))
            skipped[made] += 1
            continue
        load.problems.append(made)
    report.split, report.skipped = len(load.problems), dict(sorted(skipped.items()))
    return load, report
