"""What the UI reads, and from where: the trace store, evaluation run folders, iterate run folders.

`UISources` holds the open trace store, the evaluation runs root (`<home>/eval_runs`) and the
folders that hold `iterate.py` runs (each run a folder with `manifest.json`, and
`summary.json` once its report is written). Iterate runs are read as plain JSON files: the
server layer sits below training, so it never imports `agentrt.training`; a file that is not a
run manifest is skipped. The model registry is read through `agentrt.store.model_versions`.
Run references from URLs are plain names (never paths), so a request cannot read elsewhere.
This module reads; it does not render.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentrt.core.errors import InvalidInputError, NotFoundError
from agentrt.eval.runs import EvalRun, RunManifest, list_runs, load_run, resolve_run, runs_root
from agentrt.store import TraceStore
from agentrt.store.model_versions import list_versions, promotion_history
from agentrt.store.records import ModelVersion, Promotion

__all__ = ["UISources", "IterateRun", "IterationRow", "Registry", "run_name", "default_iterate_dirs"]

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")


def default_iterate_dirs(home: Path) -> list[Path]:
    """Where iterate runs usually are: `./runs` (iterate's default `--out` parent) and
    `<home>/runs`."""
    return [Path.cwd() / "runs", Path(home) / "runs"]


def run_name(ref: str) -> str:
    """A run reference from a URL: a folder name, never a path.

    Raises:
        InvalidInputError: anything else.
    """
    if not _NAME.fullmatch(ref or ""):
        raise InvalidInputError(f"{ref!r} is not a run name (letters, digits, '_', '.', '-')")
    return ref


@dataclass
class IterationRow:
    """One iteration of an iterate run: the candidate, the gate and its scores."""

    iteration: int
    version: str = ""
    promoted: bool | None = None
    gate: str = ""
    accuracy: dict[str, float] = field(default_factory=dict)  # "heldout/fast" -> 0.5


@dataclass
class IterateRun:
    """An iterate run folder as read back: status, stages with their seconds, iterations."""

    run_id: str
    path: str
    status: str
    created_at: str
    updated_at: str
    preset: str
    stages: list[dict[str, Any]]
    iterations: list[IterationRow]

    @property
    def total_s(self) -> float:
        return sum(s["wall_s"] for s in self.stages)


@dataclass
class Registry:
    """The model registry: versions newest first and promotions newest first."""

    versions: list[ModelVersion]
    promotions: list[Promotion]


def _accuracy(scores: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for split, by_mode in (scores or {}).items() if isinstance(scores, dict) else []:
        for mode, m in (by_mode or {}).items() if isinstance(by_mode, dict) else []:
            if isinstance(m, dict) and isinstance(m.get("accuracy"), (int, float)):
                out[f"{split}/{mode}"] = float(m["accuracy"])
    return out


def _iterations(data: dict[str, Any], summary: dict[str, Any] | None) -> list[IterationRow]:
    if summary and isinstance(summary.get("rows"), list):
        return [IterationRow(iteration=int(r.get("iteration", i)), version=str(r.get("version", "")),
                             promoted=r.get("promoted"), gate=str(r.get("gate") or ""),
                             accuracy=_accuracy(r.get("scores")))
                for i, r in enumerate(summary["rows"]) if isinstance(r, dict)]
    rows: dict[int, IterationRow] = {}
    for key, stage in data.get("stages", {}).items():
        m = re.fullmatch(r"it(\d+)/(eval|gate)", key)
        if not m or not isinstance(stage, dict):
            continue
        row = rows.setdefault(int(m.group(1)), IterationRow(iteration=int(m.group(1))))
        out = stage.get("outputs") or {}
        if m.group(2) == "eval":
            row.accuracy = _accuracy(out.get("candidate"))
        else:
            row.promoted, row.gate = out.get("promote"), str(out.get("reason") or "")
    return [rows[k] for k in sorted(rows)]


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _iterate_run(folder: Path) -> IterateRun | None:
    data = _read_json(folder / "manifest.json")
    if data is None or not isinstance(data.get("stages"), dict) or "config" not in data:
        return None
    stages = [{"key": k, "wall_s": float(v.get("wall_s") or 0.0),
               "started_at": str(v.get("started_at", "")), "attempts": v.get("attempts", 1)}
              for k, v in data["stages"].items() if isinstance(v, dict)]
    config = data.get("config") if isinstance(data.get("config"), dict) else {}
    return IterateRun(run_id=str(data.get("run_id") or folder.name), path=str(folder),
                      status=str(data.get("status", "")), created_at=str(data.get("created_at", "")),
                      updated_at=str(data.get("updated_at", "")),
                      preset=str(config.get("preset", "")), stages=stages,
                      iterations=_iterations(data, _read_json(folder / "summary.json")))


@dataclass
class UISources:
    """Where the UI reads from.

    Attributes:
        store: the open trace store (also holds the model registry tables).
        home: the agentrt home (evaluation runs live in `<home>/eval_runs`).
        iterate_dirs: folders whose subfolders are iterate runs.
    """

    store: TraceStore
    home: Path
    iterate_dirs: list[Path] = field(default_factory=list)

    @property
    def eval_root(self) -> Path:
        return runs_root(self.home)

    def eval_runs(self) -> list[RunManifest]:
        return list_runs(self.eval_root)

    def eval_run(self, ref: str) -> EvalRun:
        """One evaluation run by name (or unique prefix). Raises NotFoundError, ConfigError."""
        return load_run(resolve_run(run_name(ref), self.eval_root))

    def iterate_runs(self) -> list[IterateRun]:
        found: dict[str, IterateRun] = {}
        for root in self.iterate_dirs:
            for m in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
                run = _iterate_run(m.parent)
                if run is not None:
                    found.setdefault(str(m.parent.resolve()), run)
        return sorted(found.values(), key=lambda r: r.created_at, reverse=True)

    def iterate_run(self, ref: str) -> IterateRun:
        name = run_name(ref)
        for run in self.iterate_runs():
            if Path(run.path).name == name:
                return run
        raise NotFoundError(f"no iterate run {name!r}")

    def registry(self, limit: int = 200) -> Registry:
        engine = self.store.engine
        return Registry(list_versions(engine, limit), promotion_history(engine, limit))
