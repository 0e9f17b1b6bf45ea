"""Worked solutions with calculator annotations, compiled into programs: a training source for any
dataset of (problem, worked solution, answer) rows, such as GSM8K's train split.

A worked solution marks each calculation as `<<48/2=24>>`. `compile_solution` turns the chain of
annotations into a straight-line program for the sandboxed python tool: one named step per
annotation (`clips = 48 / 2`), a later annotation that reuses an earlier result reads that
step's name instead of the number, and the step that computes the reference answer is printed.
Steps the printed one does not depend on are left out. The working, with the annotations
removed, becomes the fast answer ("... Final answer: 72").

Nothing is evaluated with `eval`: expressions are computed exactly with fractions
(`agentrt.eval.arith`) to find which step yields the answer. Whether the program really prints
the answer is
decided by running it in the sandbox (`verify_programs`), which drops what prints anything else.
A row that cannot be compiled, or repeats an earlier problem, is dropped with a reason, and every
drop is counted in the `WorkedReport`; a line that is not a JSON object is an error naming the
file and line. This module knows row formats, programs and the sandbox tool; not the runtime's
prompts or traces (`agentrt.data_synth.teacher` turns the problems into gold traces).
"""

from __future__ import annotations

import hashlib
import keyword
import re
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.errors import InvalidInputError, ParseError
from agentrt.core.jsonl import object_lines
from agentrt.core.types import Problem
from agentrt.data_synth.decontaminate import build_index, decontaminate
from agentrt.data_synth.problem_io import read_problems, write_problems
from agentrt.data_synth.verify import grade_text
from agentrt.eval.arith import evaluate_arithmetic
from agentrt.tools.python_tool import PythonTool

__all__ = ["RowFormat", "FORMATS", "Compiled", "WorkedReport", "compile_solution",
           "load_worked", "verify_programs", "worked_problems", "COMPILER_VERSION"]

COMPILER_VERSION = "2"
_ANNOTATION = re.compile(r"<<([^<>]*)>>")
_EXPR_CHARS = re.compile(r"^[0-9+\-*/(). ]+$")
_NUMBER = re.compile(r"\d+\.?\d*|\.\d+")
_WORD = re.compile(r"[A-Za-z]+")
_STOP = frozenset("""a an the of in on at to for from and or but is are was were be been will
would can could has have had it its this that these those he she they we you i his her their
our your them him there so then than more less each every all total he's she's which who with
by as if into out up down about after before over under per now also just only her""".split())
_RESERVED = frozenset(set(keyword.kwlist) | {"print", "sum", "max", "min", "round", "int",
                                              "float", "abs", "pow", "len", "list", "str", "id",
                                              "type", "input", "range", "map", "set", "dict"})
_MAX_NAME = 20
_MAX_STEPS = 100  # naming the steps is quadratic in their number; GSM8K's longest has 9


@dataclass(frozen=True)
class RowFormat:
    """Where a JSONL row keeps its problem, its worked solution and its answer.

    `answer_key` None means the answer ends the solution after `answer_marker` (GSM8K's
    `#### 72`).
    """

    question_key: str = "question"
    solution_key: str = "answer"
    answer_key: str | None = None
    answer_marker: str = "####"


FORMATS = {"gsm8k": RowFormat()}


class Compiled(BaseModel):
    """One compiled worked solution."""

    program: str
    steps: int
    working: str
    answer: str


class WorkedReport(BaseModel):
    """What a source produced: rows read, problems kept, and every drop with its reason."""

    source: str = ""
    rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = Field(default_factory=dict)
    examples: dict[str, str] = Field(default_factory=dict)
    contaminated: int = 0

    def drop(self, reason: str, row_id: str) -> None:
        key = reason.split(":")[0]
        self.dropped[key] = self.dropped.get(key, 0) + 1
        self.examples.setdefault(key, f"{row_id}: {reason}"[:300])


def _tokens(expr: str) -> list[str]:
    """Numbers, operators and parentheses of an annotation, numbers normalized (`.5` -> 0.5,
    `05` -> 5); "x" as multiplication is read as `*`."""
    out: list[str] = []
    for tok in re.findall(r"\d+\.?\d*|\.\d+|//|[+\-*/()]", expr.replace("x", "*")):
        if tok[0].isdigit() or tok[0] == ".":
            whole, _, frac = tok.partition(".")
            whole = whole.lstrip("0") or "0"
            frac = frac.rstrip("0")
            tok = f"{whole}.{frac}" if frac else whole
        out.append(tok)
    return out


def _spaced(tokens: list[str]) -> str:
    """Tokens joined as people write Python: spaces around binary operators only."""
    out, prev = "", ""
    for tok in tokens:
        unary = tok == "-" and (prev in ("", "(") or prev in "+-*/" or prev == "//")
        if tok in ("+", "-", "*", "/", "//") and not unary:
            out += f" {tok} "
        elif tok == ")" or prev == "(" or (prev == "-" and out.endswith("(-")) or not out:
            out += tok
        elif unary:
            out += tok if out.endswith(("(", " ")) else f" {tok}"
        else:
            out += tok if out.endswith((" ", "-")) else f" {tok}"
        prev = tok
    return out.strip()


def _number(text: str) -> Fraction | None:
    text = text.replace(",", "").replace("$", "").strip()
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError):
        return None


def _name(solution: str, start: int, end: int, used: set[str], k: int) -> str:
    """A Python name for the step annotated at [start, end): the words that follow its result
    ("24 clips in May" -> clips, "0.2 per minute" -> per_minute), else the word just before
    its written-out calculation ("she earned 0.2 x 50 = " -> earned), else `step<k>`."""
    after = re.sub(r"^\s*\$?[\d.,]+%?", "", solution[end:].split("\n")[0])
    words = [w.lower() for w in _WORD.findall(re.split(r"[.,;:!?()]", after)[0])]
    picked: list[str] = []
    for w in words[:3]:
        if w in _STOP and not (w == "per" and not picked):
            break
        picked.append(w)
        if len(picked) == 2 or (picked[0] == "per" and len(picked) == 2):
            break
    if picked == ["per"]:
        picked = []
    if not picked:  # the last word before the written-out calculation on its line
        line = re.sub(r"[\d\s.,+\-*/x()=$%:]*$", "", solution[:start].split("\n")[-1])
        before = [w.lower() for w in _WORD.findall(line)]
        picked = before[-1:] if before and before[-1] not in _STOP else []
    name = "_".join(picked)[:_MAX_NAME].strip("_")
    if not name or not name[0].isalpha() or name in _RESERVED:
        name = f"step{k}"
    base, n = name, 2
    while name in used:
        name, n = f"{base}_{n}", n + 1
    used.add(name)
    return name


@dataclass
class _Step:
    name: str
    tokens: list[str]
    value: Fraction
    refs: set[str]


def _refs_for(tokens: list[str], steps: list[_Step], question_numbers: set[Fraction]
              ) -> tuple[list[str], set[str]]:
    """Replace numbers that are earlier results by their step's name: always when the number
    is not in the question, else only when it is the result of the step just before."""
    out, refs = [], set()
    for tok in tokens:
        value = _number(tok) if tok[0].isdigit() else None
        match = None
        if value is not None:
            for step in reversed(steps):
                if step.value == value:
                    match = step
                    break
        if match is not None and (value not in question_numbers or match is steps[-1]):
            out.append(match.name)
            refs.add(match.name)
        else:
            out.append(tok)
    return out, refs


def _working(solution: str, answer: str, marker: str) -> str:
    """The solution as a fast answer: annotations removed, the marker line replaced."""
    text = _ANNOTATION.sub("", solution)
    if marker and marker in text:
        text = text[:text.rindex(marker)]
    lines = [" ".join(line.split()) for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines + [f"Final answer: {answer}"])


def compile_solution(question: str, solution: str, answer: str, *,
                     marker: str = "####") -> Compiled | str:
    """Compile one worked solution; the reason it cannot be compiled when it cannot.

    Example:
        >>> compile_solution("48 clips in April, half as many in May. Total?",
        ...                  "She sold 48/2 = <<48/2=24>>24 clips in May.\\n"
        ...                  "48+24 = <<48+24=72>>72 clips in all.\\n#### 72", "72").program
        'clips = 48 / 2\\nclips_2 = 48 + clips\\nprint(clips_2)'
    """
    reference = _number(answer)
    if reference is None:
        return f"answer is not a number: {answer!r}"
    found = list(_ANNOTATION.finditer(solution))
    if not found:
        return "no calculator annotations"
    if len(found) > _MAX_STEPS:
        return f"too many calculator annotations: {len(found)} (at most {_MAX_STEPS})"
    question_numbers = {v for t in _NUMBER.findall(question.replace(",", ""))
                        if (v := _number(t)) is not None}
    steps: list[_Step] = []
    used: set[str] = set()
    for k, m in enumerate(found, start=1):
        expr, eq, _stated = m.group(1).rpartition("=")
        if not eq or not expr.strip():
            return f"annotation without '=': <<{m.group(1)}>>"
        if not _EXPR_CHARS.match(expr.replace("x", "*")):
            return f"annotation is not plain arithmetic: <<{m.group(1)}>>"
        tokens = _tokens(expr)
        try:
            value, _ = evaluate_arithmetic(" ".join(tokens), decimals=True)
        except (ParseError, ZeroDivisionError) as e:
            return f"annotation does not parse: <<{m.group(1)}>> ({e})"
        named, refs = _refs_for(tokens, steps, question_numbers)
        steps.append(_Step(_name(solution, m.start(), m.end(), used, k), named, value, refs))
    final = next((s for s in reversed(steps) if s.value == reference), None)
    if final is None:
        return f"no annotated step computes the answer: {answer}"
    needed, todo = {final.name}, [final]
    by_name = {s.name: s for s in steps}
    while todo:
        for ref in todo.pop().refs - needed:
            needed.add(ref)
            todo.append(by_name[ref])
    kept = [s for s in steps[:steps.index(final) + 1] if s.name in needed]
    lines = [f"{s.name} = {_spaced(s.tokens)}" for s in kept] + [f"print({final.name})"]
    return Compiled(program="\n".join(lines), steps=len(kept),
                    working=_working(solution, answer, marker), answer=answer)


def _rows(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    """The file's object rows and their line numbers (`agentrt.core.jsonl.object_lines`); a
    line that is not UTF-8, not JSON or not an object raises `InvalidInputError` naming it."""
    try:
        for i, row in object_lines(path):
            if isinstance(row, str):
                raise InvalidInputError(f"{path} line {i}: {row}")
            yield i, row
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror or e}") from None


def load_worked(path: str | Path, *, source: str, fmt: RowFormat = RowFormat(),
                limit: int | None = None) -> tuple[list[Problem], WorkedReport]:
    """Problems from a JSONL file of worked solutions, each with its compiled program.

    Args:
        path: the JSONL file.
        source: the source's name; problems get it as family and id prefix (`gsm8k-17`).
        fmt: where rows keep question, solution and answer.
        limit: read at most this many rows.

    Returns:
        Problems (grader `numeric`; `meta` holds `program`, `working`, `source`, `row`) and the
        report of drops. Programs are not yet run: see `verify_programs`.

    Raises:
        InvalidInputError: the file is missing or holds no rows, or a line is not UTF-8, not
            JSON or not an object (the message names the file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no worked-solution file at {path}")
    report, problems = WorkedReport(source=source), []
    seen: dict[str, str] = {}  # a kept problem's text -> its id
    for i, row in _rows(path):
        if limit is not None and report.rows >= limit:
            break
        report.rows += 1
        rid = f"{source}-{i}"
        question, solution = row.get(fmt.question_key) or "", row.get(fmt.solution_key) or ""
        if not isinstance(question, str) or not isinstance(solution, str):
            report.drop("question or solution is not text", rid)
            continue
        question = question.strip()
        if fmt.answer_key is not None:
            answer = str(row.get(fmt.answer_key, "")).strip()
        else:
            answer = solution.rsplit(fmt.answer_marker, 1)[-1].strip() \
                if fmt.answer_marker in solution else ""
        answer = answer.replace(",", "")
        if not question or not answer:
            report.drop("missing question or answer", rid)
            continue
        if (key := " ".join(question.split())) in seen:
            report.drop(f"duplicate problem: the same as {seen[key]}", rid)
            continue
        out = compile_solution(question, solution, answer, marker=fmt.answer_marker)
        if isinstance(out, str):
            report.drop(out, rid)
            continue
        seen[key] = rid
        problems.append(Problem(
            id=rid, text=question, answer=answer, grader="numeric", family=source,
            difficulty=min(3, 1 + out.steps // 3),
            meta={"program": out.program, "working": out.working, "source": source,
                  "row": i, "steps": out.steps}))
    if not report.rows and limit != 0:
        raise InvalidInputError(f"{path} holds no rows")
    report.kept = len(problems)
    return problems, report


def verify_programs(problems: list[Problem], report: WorkedReport, *, tool: Any = None,
                    workers: int = 4, progress: Callable[[int, int], None] | None = None
                    ) -> list[Problem]:
    """Run every program in the sandbox; keep the problems whose program prints the answer.

    Args:
        problems: problems from `load_worked`.
        report: the source's report; drops are added to it.
        tool: the sandboxed python tool (a fresh `PythonTool` by default).
        workers: programs run at once.
        progress: called with (done, total).
    """
    tool = tool or PythonTool()
    done = 0

    def run(p: Problem) -> str | None:
        out = tool.run({"code": p.meta["program"]})
        printed = str(out.get("stdout", "")).strip()
        if out.get("exit_code") != 0 or out.get("timed_out"):
            return f"program failed in the sandbox: {str(out.get('stderr', ''))[-120:]}"
        if not grade_text(printed, p):
            return f"program printed a wrong answer: {printed[:40]!r} for {p.answer}"
        return None

    kept: list[Problem] = []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for p, reason in zip(problems, pool.map(run, problems)):
            done += 1
            if progress is not None:
                progress(done, len(problems))
            if reason is None:
                kept.append(p)
            else:
                report.drop(reason, p.id)
    report.kept = len(kept)
    return kept


def worked_problems(path: str | Path, *, source: str, cache_dir: str | Path,
                    fmt: RowFormat = RowFormat(), decontaminate_against: str | Path | None = None,
                    workers: int = 4, progress: Callable[[int, int], None] | None = None,
                    ) -> tuple[list[Problem], WorkedReport]:
    """Compiled, sandbox-verified and decontaminated problems of a source, cached on disk.

    The cache file is keyed by the source file's content hash, its row format and the compiler
    version, so a changed file, format or compiler compiles again; it holds the problems and
    the report.

    Args:
        path: the JSONL file of worked solutions.
        source: the source's name (family of its problems).
        cache_dir: where the compiled set is kept.
        fmt: the row format.
        decontaminate_against: the benchmark data folder whose test sets are excluded
            (`agentrt.data_synth.decontaminate.build_index`); None for the default folder.
        workers: sandbox runs at once.
        progress: called with (done, total) while programs run.

    Raises:
        InvalidInputError: the file is missing or unreadable, or `load_worked` rejects it.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no worked-solution file at {path}")
    try:
        digest = hashlib.sha256(path.read_bytes())
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e.strerror or e}") from None
    if fmt != RowFormat():  # the default format keeps the key it always had
        digest.update(repr(fmt).encode())
    cache = Path(cache_dir) / f"{source}-{digest.hexdigest()[:16]}-c{COMPILER_VERSION}"
    if (cache / "report.json").is_file():
        report = WorkedReport.model_validate_json((cache / "report.json").read_text())
        return read_problems(cache / "problems.jsonl"), report
    problems, report = load_worked(path, source=source, fmt=fmt)
    clean, _removed, dreport = decontaminate(problems, build_index(decontaminate_against))
    report.contaminated = dreport.removed
    for hit in dreport.hits:
        report.drop(f"overlaps a test set: {hit.source}", hit.id)
    kept = verify_programs(clean, report, workers=workers, progress=progress)
    cache.mkdir(parents=True, exist_ok=True)
    write_problems(kept, cache / "problems.jsonl")
    tmp = cache / ".report.json.tmp"
    tmp.write_text(report.model_dump_json(indent=2))
    tmp.replace(cache / "report.json")
    return kept, report


def drop_summary(report: WorkedReport) -> str:
    """One line per drop reason, largest first."""
    return "\n".join(f"{n:6d}  {reason}" for reason, n in Counter(report.dropped).most_common())
