"""Problems as JSON Lines: one `agentrt.core.types.Problem` per line, written atomically, read strictly.

The file format of `agentrt synth problems --out` and `agentrt synth traces --from` (and of
model-written problems): each line is a JSON object with the fields of `Problem` (id, text,
answer, grader, family, difficulty, seed, meta). Reading validates every line and reports the
first bad one by line number; ids must be unique within a file. This module knows nothing about
how problems are made or solved.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError

from agentrt.core.errors import InvalidInputError, first_problem
from agentrt.eval.graders import GRADERS
from agentrt.core.types import Problem

__all__ = ["write_problems", "read_problems"]


def write_problems(problems: Iterable[Problem], path: str | Path) -> int:
    """Write problems to `path` (a temporary file renamed into place); return how many.

    Raises:
        InvalidInputError: the directory of `path` does not exist or cannot be written.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise InvalidInputError(f"cannot write {target}: no directory {target.parent}")
    count = 0
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for p in problems:
                f.write(json.dumps(p.model_dump(mode="json"), ensure_ascii=False) + "\n")
                count += 1
        os.replace(tmp, target)
    except OSError as e:
        raise InvalidInputError(f"cannot write {target}: {e}") from None
    return count


def _problem(line: str, where: str) -> Problem:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"{where}: invalid JSON ({e.msg})") from None
    if not isinstance(row, dict):
        raise InvalidInputError(f"{where}: a problem must be a JSON object")
    try:
        problem = Problem.model_validate(row)
    except ValidationError as e:
        raise InvalidInputError(f"{where}: {first_problem(e, 'problem')}") from None
    if problem.grader not in GRADERS:
        raise InvalidInputError(f"{where}: unknown grader {problem.grader!r}; known: "
                                f"{', '.join(sorted(GRADERS))}")
    return problem


def read_problems(path: str | Path) -> list[Problem]:
    """Read a problems file.

    Raises:
        InvalidInputError: the file is missing or empty, a line is not a valid problem (the
            message gives its number), or two lines share an id.
    """
    source = Path(path)
    try:
        lines = source.read_text(encoding="utf-8").split("\n")
    except OSError as e:
        raise InvalidInputError(f"cannot read problems from {source}: {e.strerror or e}") from None
    problems: list[Problem] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        problem = _problem(line, f"{source} line {number}")
        if problem.id in seen:
            raise InvalidInputError(f"{source} line {number}: id {problem.id!r} repeats line "
                                    f"{seen[problem.id]}")
        seen[problem.id] = number
        problems.append(problem)
    if not problems:
        raise InvalidInputError(f"{source} holds no problems")
    return problems
