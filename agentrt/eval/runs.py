"""Evaluation runs on disk: what was asked, what came out, and how to find a run again.

A run is a directory `<runs root>/<run id>/` holding `manifest.json` (the spec, backend, model,
router, settings limits, row errors, status and timing; rewritten atomically) and
`results.jsonl` (one `ProblemResult` per line, appended and flushed as each problem finishes,
so an interrupted run keeps what it did). The runs root is `<home>/eval_runs` unless an output
directory is given. Every solve is also a trace tagged `eval_run=<run id>` in the trace store.

This module knows the records and the files; it does not run or grade anything.
"""

from __future__ import annotations

import glob
import json
import os
import re
import secrets
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrt.core.errors import ConfigError, NotFoundError, StoreError
from agentrt.eval.benchmarks import RowError

__all__ = ["EvalSpec", "ProblemResult", "RunManifest", "EvalRun", "runs_root", "new_run_id",
           "write_manifest", "append_result", "load_run", "list_runs", "resolve_run"]

RunStatus = Literal["running", "done", "interrupted", "failed"]


class EvalSpec(BaseModel):
    """What to evaluate."""

    model_config = ConfigDict(extra="forbid")

    bench: str = Field(min_length=1)
    data: str | None = None
    limit: int | None = Field(None, ge=1)
    mode: Literal["fast", "slow", "auto", "team"] = "fast"
    workers: int = Field(1, ge=1, le=64)
    grader: str | None = None
    router: str | None = None


class ProblemResult(BaseModel):
    """The outcome of one problem: answer, grade, path, cost, and the trace that holds it all."""

    index: int
    problem_id: str
    family: str = ""
    grader: str
    reference: str
    requested_mode: str
    answer: str = ""
    extracted: str = ""
    correct: bool = False
    grade_reason: str = ""
    trace_id: str | None = None
    status: str = "ok"
    mode: str | None = None
    verdict: str | None = None
    route_reason: str = ""
    fast_answer: str | None = None
    fast_correct: bool | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    llm_calls: int = 0
    tool_runs: int = 0
    latency_s: float = 0.0
    error: str | None = None


class RunManifest(BaseModel):
    """Everything about a run except its per-problem results."""

    run_id: str
    spec: EvalSpec
    status: RunStatus = "running"
    created_at: str
    finished_at: str | None = None
    backend: str = ""
    model_id: str = ""
    device: str = ""
    router: str | None = None
    profile: str = ""
    limits: dict[str, Any] = Field(default_factory=dict)
    data_path: str = ""
    problems: int = 0
    done: int = 0
    errors: int = 0
    row_errors: list[RowError] = Field(default_factory=list)
    wall_s: float | None = None
    note: str = ""
    resumes: int = 0


class EvalRun(BaseModel):
    """A run as read back: manifest, results in problem order, and where it lives."""

    manifest: RunManifest
    results: list[ProblemResult] = Field(default_factory=list)
    path: str

    @property
    def run_id(self) -> str:
        return self.manifest.run_id


def runs_root(home: Path | str, out: Path | str | None = None) -> Path:
    """The folder that holds run directories: `out` if given, else `<home>/eval_runs`."""
    return Path(out).expanduser() if out else Path(home).expanduser() / "eval_runs"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def new_run_id(spec: EvalSpec) -> str:
    """A sortable, readable, unique id such as `gsm8k-fast-20250101-120000-ab12`."""
    bench = re.sub(r"[^A-Za-z0-9_]+", "-", spec.bench.split("/")[-1]).strip("-")[:40] or "bench"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"{bench}-{spec.mode}-{stamp}-{secrets.token_hex(2)}"


def write_manifest(run_dir: Path, manifest: RunManifest) -> None:
    """Write the manifest atomically (temp file + rename)."""
    fd, tmp = tempfile.mkstemp(dir=run_dir, prefix=".manifest.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(manifest.model_dump_json(indent=1))
        os.replace(tmp, run_dir / "manifest.json")
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def append_result(run_dir: Path, result: ProblemResult) -> None:
    """Append one result line and flush it (callers serialise concurrent appends)."""
    with (run_dir / "results.jsonl").open("a", encoding="utf-8") as f:
        f.write(result.model_dump_json() + "\n")
        f.flush()


def load_run(path: Path | str) -> EvalRun:
    """Read a run directory.

    Raises:
        NotFoundError: no manifest there.
        StoreError: the manifest or a result line is corrupt (the message names the line).
    """
    run_dir = Path(path)
    mpath = run_dir / "manifest.json"
    if not mpath.is_file():
        raise NotFoundError(f"no evaluation run at {run_dir} (manifest.json missing)")
    try:
        manifest = RunManifest.model_validate_json(mpath.read_text())
    except (OSError, ValidationError) as e:
        raise StoreError(f"run manifest {mpath} is unreadable: {e}") from None
    results: list[ProblemResult] = []
    rpath = run_dir / "results.jsonl"
    if rpath.is_file():
        lines = rpath.read_text(encoding="utf-8").split("\n")
        for n, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                results.append(ProblemResult.model_validate_json(line))
            except ValidationError as e:
                if n == len(lines) and manifest.status != "done":
                    break  # the last line of a run that crashed while appending it
                raise StoreError(f"{rpath} line {n} is not a valid result: "
                                 f"{e.errors()[0]['msg']}") from None
    results.sort(key=lambda r: r.index)
    return EvalRun(manifest=manifest, results=results, path=str(run_dir))


def list_runs(root: Path | str) -> list[RunManifest]:
    """Manifests of the runs under `root`, newest first (unreadable ones skipped)."""
    folder = Path(root)
    found = []
    for m in folder.glob("*/manifest.json") if folder.is_dir() else []:
        try:
            found.append(RunManifest.model_validate_json(m.read_text()))
        except (OSError, ValidationError, json.JSONDecodeError):
            continue
    return sorted(found, key=lambda m: (m.created_at, m.run_id), reverse=True)


def resolve_run(ref: str, root: Path | str) -> Path:
    """A run directory from a path, a run id under `root`, or a unique run id prefix.

    Raises:
        NotFoundError: nothing matches. ConfigError: the prefix is ambiguous.
    """
    direct = Path(ref).expanduser()
    if (direct / "manifest.json").is_file():
        return direct
    folder = Path(root)
    if (folder / ref / "manifest.json").is_file():
        return folder / ref
    pattern = f"{glob.escape(ref)}*/manifest.json"
    matches = sorted(p.parent for p in folder.glob(pattern)) if folder.is_dir() else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"run {ref!r} is ambiguous: {', '.join(p.name for p in matches[:5])}")
    raise NotFoundError(f"no evaluation run {ref!r} (looked for a directory, and under {folder})")
