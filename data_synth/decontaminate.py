"""Decontamination against every public test set, and near-duplicate removal within a problem set.

`build_index(data)` reads the test sets in the benchmark data folder once: word n-grams (13 by
default) of GSM8K test questions, MATH-500 problems and every BIG-Bench Hard input, the whole
token sequence of each (so texts shorter than n words still match), and the number multisets of
all Game of 24 puzzles. `decontaminate(problems, index, threshold)` removes a problem when the
share of its n-grams found in a test set reaches `threshold`, when its whole text equals a test
item, or when it is a Game of 24 puzzle with a test puzzle's numbers; the report gives the
threshold and the counts. `dedupe(problems)` drops near-duplicates: the same normalized text, or
word n-gram Jaccard similarity at or above a threshold (MinHash buckets propose pairs, exact
Jaccard decides). GSM8K's train split is training data and is not indexed. Nothing here runs
models or knows how problems were made.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.errors import ConfigError
from agentrt.core.types import Problem
from agentrt.eval.benchmarks import EVERYDAY_SETS, resolve_data_dir

__all__ = [
    "ContaminationIndex",
    "ContaminationHit",
    "DecontaminationReport",
    "DuplicateHit",
    "DedupeReport",
    "build_index",
    "decontaminate",
    "dedupe",
    "DEFAULT_N",
    "DEFAULT_THRESHOLD",
]

DEFAULT_N = 13
DEFAULT_THRESHOLD = 0.1
_WORD = re.compile(r"[a-z0-9]+")
_TOKEN = re.compile(r"\w+|[^\w\s]")


def _h(text: str) -> int:
    """A stable 64-bit hash (the same in every process, unlike `hash`)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _grams(tokens: Sequence[str], n: int) -> set[int]:
    if len(tokens) < n:
        return {_h(" ".join(tokens))} if tokens else set()
    return {_h(" ".join(tokens[i : i + n])) for i in range(len(tokens) - n + 1)}


@dataclass
class ContaminationIndex:
    """N-gram hashes per test set, whole-text hashes, and Game of 24 number multisets."""

    n: int
    grams: dict[str, set[int]] = field(default_factory=dict)
    whole: dict[str, set[int]] = field(default_factory=dict)
    game24: set[tuple[int, ...]] = field(default_factory=set)
    items: dict[str, int] = field(default_factory=dict)

    def add_text(self, source: str, text: str) -> None:
        """Index one test item's text under `source`."""
        words = _words(text)
        if not words:
            return
        self.grams.setdefault(source, set()).update(_grams(words, self.n))
        self.whole.setdefault(source, set()).add(_h(" ".join(words)))
        self.items[source] = self.items.get(source, 0) + 1

    def add_game24(self, numbers: Iterable[int]) -> None:
        """Index one Game of 24 test puzzle by its sorted numbers."""
        self.game24.add(tuple(sorted(numbers)))
        self.items["game24"] = self.items.get("game24", 0) + 1


def _bbh_inputs(folder: Path) -> Iterable[str]:
    for path in sorted(folder.glob("*.json")):
        for ex in json.loads(path.read_text(encoding="utf-8")).get("examples", []):
            if isinstance(ex, dict) and isinstance(ex.get("input"), str):
                yield ex["input"]


def _jsonl_field(path: Path, key: str) -> Iterable[str]:
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                if isinstance(row, dict) and isinstance(row.get(key), str):
                    yield row[key]


def build_index(data: Path | str | None = None, n: int = DEFAULT_N) -> ContaminationIndex:
    """Index every test set in the benchmark data folder.

    Args:
        data: the benchmark data folder (default `$AGENTRT_DATA`, else `../shared/data`).
        n: word n-gram length.

    Raises:
        ConfigError: `n` < 1, or the folder or one of its test files is missing or unreadable.
    """
    if n < 1:
        raise ConfigError(f"n-gram length must be at least 1, got {n}")
    folder = resolve_data_dir(data)
    index = ContaminationIndex(n=n)
    try:
        for text in _jsonl_field(folder / "gsm8k" / "test.jsonl", "question"):
            index.add_text("gsm8k", text)
        for text in _jsonl_field(folder / "math500" / "test.jsonl", "problem"):
            index.add_text("math500", text)
        for text in _bbh_inputs(folder / "bbh"):
            index.add_text("bbh", text)
        for path in EVERYDAY_SETS.values():  # installed with the package
            for text in _jsonl_field(path, "problem"):
                index.add_text("everyday", text)
        with (folder / "game24" / "24.csv").open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                nums = (row.get("Puzzles") or "").split()
                if len(nums) == 4 and all(x.isdigit() for x in nums):
                    index.add_game24(int(x) for x in nums)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read test set under {folder}: {e}") from None
    return index


class ContaminationHit(BaseModel):
    """A removed problem: which test set it overlaps and how much (share of its n-grams)."""

    id: str
    source: str
    overlap: float


class DecontaminationReport(BaseModel):
    """What `decontaminate` did: the settings, the counts and each removal."""

    n: int
    threshold: float
    checked: int
    kept: int
    removed: int
    removed_by_source: dict[str, int] = Field(default_factory=dict)
    hits: list[ContaminationHit] = Field(default_factory=list)
    index_items: dict[str, int] = Field(default_factory=dict)


def _game24_numbers(problem: Problem) -> tuple[int, ...] | None:
    nums = problem.meta.get("numbers")
    if problem.grader != "game24" or not isinstance(nums, list) or len(nums) != 4:
        return None
    if all(isinstance(x, int) for x in nums):
        return tuple(sorted(nums))
    return None


def _hit(problem: Problem, index: ContaminationIndex, threshold: float) -> ContaminationHit | None:
    nums = _game24_numbers(problem)
    if nums is not None and nums in index.game24:
        return ContaminationHit(id=problem.id, source="game24", overlap=1.0)
    words = _words(problem.text)
    whole = _h(" ".join(words))
    grams = _grams(words, index.n)
    best: ContaminationHit | None = None
    for source, test_grams in index.grams.items():
        if whole in index.whole.get(source, ()):
            return ContaminationHit(id=problem.id, source=source, overlap=1.0)
        if not grams:
            continue
        overlap = len(grams & test_grams) / len(grams)
        if overlap > 0 and overlap >= threshold and (best is None or overlap > best.overlap):
            best = ContaminationHit(id=problem.id, source=source, overlap=round(overlap, 4))
    return best


def decontaminate(
    problems: Sequence[Problem], index: ContaminationIndex, threshold: float = DEFAULT_THRESHOLD
) -> tuple[list[Problem], list[Problem], DecontaminationReport]:
    """Split problems into those clear of every test set and those that overlap one.

    Args:
        problems: candidate problems (generated or model-written).
        index: from `build_index`.
        threshold: remove when at least this share (0-1] of a problem's n-grams occur in one test set.

    Returns:
        (kept, removed, report), both lists in input order.

    Raises:
        ConfigError: `threshold` outside (0, 1].
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"threshold must be in (0, 1], got {threshold}")
    kept: list[Problem] = []
    removed: list[Problem] = []
    hits: list[ContaminationHit] = []
    for problem in problems:
        hit = _hit(problem, index, threshold)
        if hit is None:
            kept.append(problem)
        else:
            removed.append(problem)
            hits.append(hit)
    by_source: dict[str, int] = defaultdict(int)
    for hit in hits:
        by_source[hit.source] += 1
    report = DecontaminationReport(
        n=index.n, threshold=threshold, checked=len(problems), kept=len(kept), removed=len(removed),
        removed_by_source=dict(by_source), hits=hits, index_items=dict(index.items),
    )
    return kept, removed, report


class DuplicateHit(BaseModel):
    """A dropped near-duplicate, the kept problem it duplicates, and their similarity."""

    id: str
    duplicate_of: str
    similarity: float


class DedupeReport(BaseModel):
    """What `dedupe` did."""

    n: int
    threshold: float
    checked: int
    kept: int
    removed: int
    exact_duplicates: int
    hits: list[DuplicateHit] = Field(default_factory=list)


_PRIME = 4294967311  # a prime just above 2**32


class _MinHasher:
    """MinHash signatures of 32-bit gram hashes; fixed seed, so the same in every run."""

    def __init__(self, num_perm: int, seed: int = 1):
        import numpy as np  # only deduplication needs it  # heavy: numpy

        self.np = np
        self.num_perm = num_perm
        rng = np.random.default_rng(seed)
        self.a = rng.integers(1, 2**32 - 1, size=num_perm, dtype=np.uint64)
        self.b = rng.integers(0, 2**32 - 1, size=num_perm, dtype=np.uint64)

    def signature(self, grams: set[int]) -> Any:
        np = self.np
        if not grams:
            return np.zeros(self.num_perm, dtype=np.uint64)
        h = np.fromiter((g & 0xFFFFFFFF for g in grams), dtype=np.uint64, count=len(grams))
        return ((np.outer(h, self.a) + self.b) % np.uint64(_PRIME)).min(axis=0)


def _dedupe_grams(text: str, n: int) -> set[int]:
    return _grams(_TOKEN.findall(text.lower()), n)


def dedupe(problems: Sequence[Problem], n: int = 3, threshold: float = 0.8, bands: int = 16,
           rows: int = 8) -> tuple[list[Problem], list[Problem], DedupeReport]:
    """Drop near-duplicate problems, keeping the first of each group (input order).

    Tokens are words and single symbols, so "3 + 4" and "3 - 4" differ. Two problems are
    near-duplicates when their normalized texts are equal or the Jaccard similarity of their
    token n-gram sets is at least `threshold`.

    Args:
        problems: the set to clean.
        n: token n-gram length for the similarity.
        threshold: Jaccard similarity in (0, 1] at which a later problem is dropped.
        bands, rows: MinHash bucketing (bands * rows permutations); more bands find more pairs.

    Returns:
        (kept, removed, report).

    Raises:
        ConfigError: bad `n`, `threshold`, `bands` or `rows`.
    """
    if n < 1 or not 0 < threshold <= 1 or bands < 1 or rows < 1:
        raise ConfigError("dedupe needs n >= 1, 0 < threshold <= 1, bands >= 1 and rows >= 1")
    hasher = _MinHasher(bands * rows)
    seen_text: dict[int, str] = {}
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    kept_grams: list[set[int]] = []
    kept: list[Problem] = []
    removed: list[Problem] = []
    hits: list[DuplicateHit] = []
    exact = 0
    for problem in problems:
        norm = _h(" ".join(_TOKEN.findall(problem.text.lower())))
        if norm in seen_text:
            exact += 1
            removed.append(problem)
            hits.append(DuplicateHit(id=problem.id, duplicate_of=seen_text[norm], similarity=1.0))
            continue
        grams = _dedupe_grams(problem.text, n)
        sig = hasher.signature(grams)
        keys = [(b, sig[b * rows : (b + 1) * rows].tobytes()) for b in range(bands)]
        candidates = sorted({j for key in keys for j in buckets.get(key, ())})
        dup = _best_match(grams, candidates, kept_grams, threshold)
        if dup is not None:
            j, sim = dup
            removed.append(problem)
            hits.append(DuplicateHit(id=problem.id, duplicate_of=kept[j].id, similarity=round(sim, 4)))
            continue
        seen_text[norm] = problem.id
        for key in keys:
            buckets[key].append(len(kept))
        kept_grams.append(grams)
        kept.append(problem)
    report = DedupeReport(n=n, threshold=threshold, checked=len(problems), kept=len(kept),
                          removed=len(removed), exact_duplicates=exact, hits=hits)
    return kept, removed, report


def _best_match(grams: set[int], candidates: list[int], kept_grams: list[set[int]],
                threshold: float) -> tuple[int, float] | None:
    best: tuple[int, float] | None = None
    for j in candidates:
        other = kept_grams[j]
        union = len(grams | other)
        sim = len(grams & other) / union if union else 1.0
        if sim >= threshold and (best is None or sim > best[1]):
            best = (j, sim)
    return best
