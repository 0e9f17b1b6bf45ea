"""Evaluation core: benchmark loaders, final-answer extraction and graders.

    >>> from agentrt.eval import extract_answer, grade
    >>> from agentrt.core.types import Problem
    >>> p = Problem(id="p1", text="What is 6*7?", answer="42", grader="numeric")
    >>> grade(extract_answer("6*7 = 42. The answer is 42.", p.grader), p).correct
    True

Pure Python: no models, no network. The run harness, metrics and reports build on this; they
are not here. Symbolic math equivalence is delegated to the sandboxed sympy tool on demand.
"""

from __future__ import annotations

from agentrt.eval.benchmarks import (BENCHMARKS, BenchmarkLoad, RowError, bbh_tasks, load_benchmark,
                                     resolve_data_dir)
from agentrt.eval.extract import extract_answer
from agentrt.eval.graders import GRADERS, Grade, Grader, get_grader, grade

__all__ = [
    "BENCHMARKS",
    "BenchmarkLoad",
    "RowError",
    "bbh_tasks",
    "load_benchmark",
    "resolve_data_dir",
    "extract_answer",
    "GRADERS",
    "Grade",
    "Grader",
    "get_grader",
    "grade",
]
