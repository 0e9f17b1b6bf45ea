"""The run manifest: which stages of a self-improvement run are complete, and what they made.

One JSON file per run directory (`manifest.json`), replaced atomically (written to a temporary
file, flushed, renamed) after every change, so a kill leaves the previous complete version.
A stage is recorded `done` only after all its outputs are complete on disk and in the store;
`Manifest.run_stage` skips stages already done and returns their recorded outputs, which is
how the same command resumes a killed run. The config is stored too: resuming with a
different config is refused rather than mixing two experiments in one directory.
This module knows files and JSON; what a stage does is `training.stages`' business.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentrt.core.errors import ConfigError

__all__ = ["StageRecord", "PipelineRecord", "Manifest", "MANIFEST"]

MANIFEST = "manifest.json"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class StageRecord(BaseModel):
    """One completed stage."""

    status: str = "done"
    started_at: str
    finished_at: str
    wall_s: float
    outputs: dict[str, Any] = Field(default_factory=dict)
    attempts: int = 1


class PipelineRecord(BaseModel):
    """The whole run: config, status, completed stages (in order) and per-iteration summaries."""

    run_id: str
    config: dict[str, Any]
    status: str = "running"
    created_at: str = Field(default_factory=_now)
    updated_at: str = Field(default_factory=_now)
    current: str | None = None
    starts: int = 0
    stages: dict[str, StageRecord] = Field(default_factory=dict)
    attempts: dict[str, int] = Field(default_factory=dict)


class Manifest:
    """A run directory's manifest, loaded or created, saved atomically on every change.

    Args:
        run_dir: the run directory (created if missing).
        config: the run's config as a dict; must equal the stored one when resuming.
        defaults: the config's default values: a key the stored config lacks (a setting added
            to the code since the run started) counts as equal when the new value is its
            default, so a newer checkout still resumes an older run of the same experiment.

    Raises:
        ConfigError: the directory holds a run with a different config, or an unreadable
            manifest.
    """

    def __init__(self, run_dir: str | Path, config: dict[str, Any],
                 defaults: dict[str, Any] | None = None):
        self.dir = Path(run_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / MANIFEST
        if self.path.is_file():
            try:
                self.data = PipelineRecord.model_validate_json(self.path.read_text(encoding="utf-8"))
            except ValueError as e:
                raise ConfigError(f"unreadable run manifest {self.path}: {e}") from None
            stored = {**{k: v for k, v in (defaults or {}).items() if k in config},
                      **self.data.config}
            if stored != config:
                changed = sorted(k for k in set(config) | set(stored)
                                 if config.get(k) != stored.get(k))
                raise ConfigError(f"{self.dir} holds a run with a different config (changed: "
                                  f"{', '.join(changed)}); use another output directory")
        else:
            self.data = PipelineRecord(run_id=self.dir.name, config=config)
        self.data.starts += 1
        self.data.status = "running"
        self.listener: Callable[..., None] | None = None  # told when a stage ends or is skipped
        self.save()

    @property
    def resumed(self) -> bool:
        return self.data.starts > 1

    def save(self) -> None:
        self.data.updated_at = _now()
        fd, tmp = tempfile.mkstemp(prefix=".manifest.", dir=self.dir)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.data.model_dump_json(indent=2))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def done(self, key: str) -> bool:
        return key in self.data.stages

    def outputs(self, key: str) -> dict[str, Any]:
        return self.data.stages[key].outputs

    def run_stage(self, key: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Run `fn` unless stage `key` is done; record its outputs once it returns."""
        if key in self.data.stages:
            if self.listener is not None:
                self.listener(key, resumed=True)
            return self.data.stages[key].outputs
        self.data.current = key
        self.data.attempts[key] = self.data.attempts.get(key, 0) + 1
        self.save()
        started, t0 = _now(), time.perf_counter()
        outputs = fn()
        self.data.stages[key] = StageRecord(started_at=started, finished_at=_now(),
                                            wall_s=time.perf_counter() - t0,
                                            outputs=json.loads(json.dumps(outputs, default=str)),
                                            attempts=self.data.attempts[key])
        self.data.current = None
        self.save()
        if self.listener is not None:
            self.listener(key, wall_s=self.data.stages[key].wall_s)
        return self.data.stages[key].outputs

    def finish(self, status: str = "done") -> None:
        self.data.status = status
        self.data.current = None
        self.save()

    def stage_times(self) -> dict[str, float]:
        """Wall seconds of each completed stage, in completion order."""
        return {k: v.wall_s for k, v in self.data.stages.items()}
