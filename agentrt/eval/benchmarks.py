"""Benchmark loaders: Game of 24, GSM8K, MATH-500, BIG-Bench Hard, and any JSONL of problems.

`load_benchmark(spec, data, limit)` reads the files described in the data folder's README (the
data is not installed with the package; its folder comes from the `data` argument, then
`$AGENTRT_DATA`, then `../shared/data` from the current directory) and returns `Problem`s in
file order plus a list of malformed rows, which are skipped rather than fatal.

Specs: `game24` (rows 900-999, the usual hard test slice), `game24:all`, `gsm8k` (test split),
`gsm8k:train`, `math500`, `bbh` (all tasks), `bbh:<task>`, `everyday` and `everyday:2` (two
sets of 40 everyday questions written by hand for this project, installed with it:
`EVERYDAY_SETS`), `jsonl:<path>`, and the
benchmarks registered by the layers above (`register_benchmark`): data synthesis registers the
information-exchange benchmarks `infox` (generated, held-out seeds) and `infox:gsm8k` (GSM8K test
split between two agents) when `agentrt.data_synth.infox` is imported, as the CLI does.
This module does not run models or grade answers.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.errors import ConfigError
from agentrt.core.jsonl import object_lines
from agentrt.core.types import Problem
from agentrt.eval.graders import GRADERS
from agentrt.eval.numbers import parse_number

__all__ = ["RowError", "BenchmarkLoad", "BENCHMARKS", "EVERYDAY_PATH", "EVERYDAY_SETS",
           "LOADERS", "load_benchmark",
           "register_benchmark", "resolve_data_dir", "bbh_tasks"]

BENCHMARKS = ("game24", "gsm8k", "math500", "bbh", "everyday", "jsonl")
#: The everyday questions: short, in people's words, none from a generator or a public set.
EVERYDAY_PATH = Path(__file__).with_name("data") / "everyday.jsonl"
#: Every set of them by its `everyday:<set>` name (`everyday` alone is the first): the second
#: was written after the first had guided training choices, so it is the unseen check.
EVERYDAY_SETS = {"1": EVERYDAY_PATH, "2": EVERYDAY_PATH.with_name("everyday-2.jsonl")}
# name -> loader(arg, data) -> BenchmarkLoad, for benchmarks that layers above this one build
LOADERS: dict[str, Callable[[str, Any], "BenchmarkLoad"]] = {}


def register_benchmark(name: str, loader: Callable[[str, Any], "BenchmarkLoad"]) -> None:
    """Make `load_benchmark(f"{name}[:arg]")` call `loader(arg, data)` (a layer above registers
    the benchmarks it builds; the built-in names cannot be replaced)."""
    if name in BENCHMARKS or ":" in name or not name:
        raise ConfigError(f"cannot register a benchmark named {name!r}")
    LOADERS[name] = loader
GAME24_TEST_SLICE = (900, 1000)
DEFAULT_DATA = Path("..") / "shared" / "data"


class RowError(BaseModel):
    """A malformed row that was skipped: the file, its 1-based line/row number and why."""

    source: str
    row: int
    reason: str


class BenchmarkLoad(BaseModel):
    """The problems of one benchmark spec and the rows that could not be read."""

    spec: str
    path: str
    problems: list[Problem] = Field(default_factory=list)
    errors: list[RowError] = Field(default_factory=list)


def resolve_data_dir(data: Path | str | None = None) -> Path:
    """The benchmark data folder: `data`, else `$AGENTRT_DATA`, else `../shared/data`.

    Raises:
        ConfigError: the folder does not exist (the message names it).
    """
    chosen = data if data is not None else os.environ.get("AGENTRT_DATA") or DEFAULT_DATA
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise ConfigError(f"benchmark data folder not found: {path.resolve()} "
                          "(pass a data path or set AGENTRT_DATA)")
    return path


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise ConfigError(f"benchmark file not found: {path}")
    return path


def bbh_tasks(data: Path | str | None = None) -> list[str]:
    """Names of the BIG-Bench Hard tasks present in the data folder, sorted."""
    folder = resolve_data_dir(data) / "bbh"
    return sorted(p.stem for p in folder.glob("*.json"))


def _game24(data: Path, variant: str) -> BenchmarkLoad:
    path = _require_file(data / "game24" / "24.csv")
    load = BenchmarkLoad(spec=f"game24:{variant}" if variant else "game24", path=str(path))
    lo, hi = (0, 10**9) if variant == "all" else GAME24_TEST_SLICE
    with path.open(newline="", encoding="utf-8") as f:
        for index, row in enumerate(csv.DictReader(f)):
            if not lo <= index < hi:
                continue
            line = index + 2  # header is line 1
            try:
                numbers = [int(x) for x in (row.get("Puzzles") or "").split()]
            except ValueError:
                numbers = []
            if len(numbers) != 4:
                reason = f"Puzzles is not four whole numbers: {row.get('Puzzles')!r}"
                load.errors.append(RowError(source=str(path), row=line, reason=reason))
                continue
            shown = " ".join(map(str, numbers))
            text = (f"Use the numbers {shown} each exactly once with + - * / and parentheses "
                    "to make 24. Answer with the expression.")
            load.problems.append(Problem(
                id=f"game24-{index}", text=text, answer="", grader="game24", family="game24",
                meta={"numbers": numbers, "rank": row.get("Rank"), "benchmark": "game24"},
            ))
    return load


def _jsonl_rows(path: Path, load: BenchmarkLoad) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each object row and its line number (`agentrt.core.jsonl.object_lines`); a line that is
    not UTF-8, not JSON or not an object is a row error."""
    for line_no, row in object_lines(path):
        if isinstance(row, str):
            load.errors.append(RowError(source=str(path), row=line_no, reason=row))
        else:
            yield line_no, row


def _gsm8k(data: Path, split: str) -> BenchmarkLoad:
    if split not in ("test", "train"):
        raise ConfigError(f"unknown gsm8k split {split!r}; choose test or train")
    path = _require_file(data / "gsm8k" / f"{split}.jsonl")
    load = BenchmarkLoad(spec=f"gsm8k:{split}" if split != "test" else "gsm8k", path=str(path))
    for i, (line_no, row) in enumerate(_jsonl_rows(path, load)):
        question, answer = row.get("question"), row.get("answer")
        final = ""
        if isinstance(answer, str) and "####" in answer:
            final = answer.rsplit("####", 1)[1].strip().replace(",", "")
        if not isinstance(question, str) or not question.strip() or not final:
            reason = "needs a question and an answer ending in '#### <number>'"
            load.errors.append(RowError(source=str(path), row=line_no, reason=reason))
            continue
        load.problems.append(Problem(
            id=f"gsm8k-{split}-{i}", text=f"{question.strip()}\nGive the final answer as a number.",
            answer=final, grader="numeric", family="gsm8k", meta={"benchmark": "gsm8k", "split": split},
        ))
    return load


def _math500(data: Path) -> BenchmarkLoad:
    path = _require_file(data / "math500" / "test.jsonl")
    load = BenchmarkLoad(spec="math500", path=str(path))
    for i, (line_no, row) in enumerate(_jsonl_rows(path, load)):
        problem, answer = row.get("problem"), row.get("answer")
        if not (isinstance(problem, str) and problem.strip() and isinstance(answer, str) and answer.strip()):
            reason = "needs non-empty 'problem' and 'answer' strings"
            load.errors.append(RowError(source=str(path), row=line_no, reason=reason))
            continue
        level = row.get("level")
        load.problems.append(Problem(
            id=str(row.get("unique_id") or f"math500-{i}"),
            text=f"{problem.strip()}\nGive the final answer in simplest exact form.",
            answer=answer.strip(), grader="math", family="math500",
            difficulty=level if isinstance(level, int) else 1,
            meta={"benchmark": "math500", "subject": row.get("subject"), "level": level},
        ))
    return load


def _bbh(data: Path, task: str | None) -> BenchmarkLoad:
    tasks = bbh_tasks(data)
    if task is not None and task not in tasks:
        raise ConfigError(f"unknown BBH task {task!r}; choose one of: {', '.join(tasks)}")
    chosen = [task] if task else tasks
    load = BenchmarkLoad(spec=f"bbh:{task}" if task else "bbh", path=str(data / "bbh"))
    for name in chosen:
        path = data / "bbh" / f"{name}.json"
        try:
            examples = json.loads(path.read_text(encoding="utf-8"))["examples"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            load.errors.append(RowError(source=str(path), row=0, reason=f"not a BBH task file: {e}"))
            continue
        for i, ex in enumerate(examples):
            if not (isinstance(ex, dict) and isinstance(ex.get("input"), str) and ex["input"].strip()
                    and isinstance(ex.get("target"), str)):
                reason = "example needs 'input' and 'target' strings"
                load.errors.append(RowError(source=str(path), row=i + 1, reason=reason))
                continue
            load.problems.append(Problem(
                id=f"bbh-{name}-{i}", text=ex["input"], answer=ex["target"], grader="bbh",
                family=f"bbh:{name}", meta={"benchmark": "bbh", "task": name},
            ))
    return load


def _jsonl(path_text: str, grader: str | None) -> BenchmarkLoad:
    path = Path(path_text).expanduser()
    if not path_text or not path.is_file():
        raise ConfigError(f"problem file not found: {path}")
    if grader is not None and grader not in GRADERS:
        raise ConfigError(f"unknown grader {grader!r}; choose one of: {', '.join(sorted(GRADERS))}")
    load = BenchmarkLoad(spec=f"jsonl:{path_text}", path=str(path))
    lines: dict[str, int] = {}  # problem id -> its line (a run finds a problem's traces by id)
    for line_no, row in _jsonl_rows(path, load):
        problem = _jsonl_problem(row, path, line_no, grader)
        if isinstance(problem, Problem) and problem.id in lines:
            problem = f"id {problem.id!r} is the id of line {lines[problem.id]} already"
        if isinstance(problem, str):
            load.errors.append(RowError(source=str(path), row=line_no, reason=problem))
        else:
            lines[problem.id] = line_no
            load.problems.append(problem)
    return load


def _jsonl_problem(row: dict[str, Any], path: Path, line_no: int, grader: str | None) -> Problem | str:
    """A Problem from one JSONL row, or the reason the row is malformed."""
    text = next((row[k] for k in ("problem", "question", "text") if k in row), None)
    if not isinstance(text, str) or not text.strip():
        return "needs a non-empty 'problem', 'question' or 'text' string"
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
        return "needs an 'answer' (string or number)"
    name = row.get("grader", grader)
    if not isinstance(name, str) or name not in GRADERS:
        return f"unknown or missing grader {name!r}; choose one of: {', '.join(sorted(GRADERS))}"
    # A reference no answer can match would count every reply wrong: a row error instead.
    if not str(answer).strip() and name != "game24":  # game24 grades against the numbers
        return f"empty 'answer' (grader {name} needs one)"
    if name == "numeric" and parse_number(str(answer)) is None:
        return f"'answer' {str(answer)[:40]!r} is not a number (grader numeric)"
    meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
    difficulty = row.get("difficulty", 1)
    return Problem(
        id=str(row.get("id") or f"{path.stem}-{line_no}"), text=text.strip(), answer=str(answer).strip(),
        grader=name, family=str(row.get("family") or path.stem),
        difficulty=difficulty if isinstance(difficulty, int) else 1, meta=meta,
    )


def load_benchmark(spec: str, data: Path | str | None = None, limit: int | None = None,
                   grader: str | None = None) -> BenchmarkLoad:
    """Load a benchmark's problems, in file order.

    Args:
        spec: `game24`, `game24:all`, `gsm8k`, `gsm8k:train`, `math500`, `bbh`, `bbh:<task>`,
            `infox`, `infox:gsm8k` or `jsonl:<path>` (rows `{"id"?, "problem"|"question"|"text",
            "answer", "grader"?}`; ids unique, an answer a `numeric` grader can read).
        data: the benchmark data folder (default `$AGENTRT_DATA`, else `../shared/data`).
        limit: keep only the first `limit` problems.
        grader: for `jsonl:` specs, the grader of rows that name none.

    Returns:
        The problems and the malformed rows (row number and reason), which were skipped.

    Raises:
        ConfigError: unknown benchmark or BBH task, a missing folder or file, or `limit` < 1.

    Example:
        >>> load = load_benchmark("bbh:boolean_expressions", limit=2)  # doctest: +SKIP
        >>> load.problems[0].answer  # doctest: +SKIP
        'False'
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    name, _, arg = spec.strip().partition(":")
    if name not in BENCHMARKS and name not in LOADERS:
        extra = "".join(f", {n}" for n in sorted(LOADERS))
        raise ConfigError(f"unknown benchmark {spec!r}; choose one of: game24, game24:all, gsm8k, "
                          f"gsm8k:train, math500, bbh, bbh:<task>, everyday, everyday:2, "
                          f"jsonl:<path>{extra}")
    if name == "jsonl":
        load = _jsonl(arg, grader)
    elif name == "everyday":
        if (arg or "1") not in EVERYDAY_SETS:
            raise ConfigError(f"unknown everyday set {arg!r}; choose everyday, "
                              f"{', '.join(f'everyday:{k}' for k in EVERYDAY_SETS)}")
        load = _jsonl(str(EVERYDAY_SETS[arg or "1"]), "numeric")
        load.spec = f"everyday:{arg}" if arg else "everyday"
    elif name in LOADERS:
        load = LOADERS[name](arg, data)
    else:
        folder = resolve_data_dir(data)
        if name == "game24":
            if arg not in ("", "all", "test"):
                raise ConfigError(f"unknown game24 slice {arg!r}; choose game24 or game24:all")
            load = _game24(folder, "all" if arg == "all" else "")
        elif name == "gsm8k":
            load = _gsm8k(folder, arg or "test")
        elif name == "math500":
            load = _math500(folder)
        else:
            load = _bbh(folder, arg or None)
    if limit is not None:
        load.problems = load.problems[:limit]
    return load
