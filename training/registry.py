"""The model registry: every trained checkpoint as a `ModelVersion`, a gate, an atomic pointer.

    registry = ModelRegistry(store)
    v = registry.register(path, base_model="smollm2-135m", parent_id=None, datasets=[...])
    decision = gate(candidate_scores, promoted_scores, margin=0.05, modes=("auto",))
    if decision.promote:
        registry.promote(v.id, reason=decision.reason)
    registry.rollback()                      # back to the version promoted before

Rules that keep the registry honest: a version is registered only after its directory is
complete (written to a temporary path and renamed into place by the trainer; `register`
checks the weights are there); the `promoted` pointer moves by one single-row UPDATE in a
write transaction, together with its history row, so readers see the old or the new version;
promoting or rolling back to a version whose directory is missing is refused. Tables:
`agentrt.store.model_versions`; readers (backends, the server) use `agentrt.llm.versions`.
This module knows nothing about training or evaluation; `gate` is pure arithmetic on scores.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from agentrt.core.errors import InvalidInputError, NotFoundError, StoreError
from agentrt.llm.versions import PROMOTED, VersionRef, is_version_ref, resolve_version
from agentrt.store.engine import writer
from agentrt.store.jsonsafe import json_safe
from agentrt.store.model_versions import ModelPointerRow, ModelPromotionRow, ModelVersionRow
from agentrt.store.records import utcnow

__all__ = ["ModelVersion", "Promotion", "GateDecision", "ModelRegistry", "gate", "is_complete"]

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
            "adapter_model.safetensors")


class ModelVersion(BaseModel):
    """A registered checkpoint: lineage, config, scores and whether it is promoted now."""

    id: str
    number: int
    parent_id: str | None = None
    base_model: str
    path: str
    datasets: list[dict[str, Any]] = Field(default_factory=list)
    training: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    gate: dict[str, Any] = Field(default_factory=dict)
    note: str = ""
    created_at: datetime
    promoted_at: datetime | None = None
    promoted: bool = False

    @property
    def label(self) -> str:
        return f"v{self.number}"


class Promotion(BaseModel):
    """One move of the promoted pointer."""

    id: int
    version_id: str | None
    previous_id: str | None
    action: str
    reason: str
    at: datetime


class GateDecision(BaseModel):
    """The gate's verdict: promote or not, the scores compared and why."""

    promote: bool
    candidate: float
    promoted: float | None
    margin: float
    modes: list[str]
    reason: str


def is_complete(path: str | Path) -> bool:
    """True when `path` holds a loadable model: a config and its weights."""
    p = Path(path)
    has_config = (p / "config.json").is_file() or (p / "adapter_config.json").is_file()
    return has_config and any((p / w).is_file() for w in _WEIGHTS)


def gate(candidate: Mapping[str, float], promoted: Mapping[str, float] | None, *,
         margin: float, modes: tuple[str, ...] | list[str]) -> GateDecision:
    """Compare held-out accuracies (mode -> accuracy in [0, 1]) on the same frozen set.

    The score is the mean accuracy over `modes`. With nothing promoted the candidate passes;
    otherwise it must beat the promoted model's score by at least `margin`.

    Raises:
        InvalidInputError: a mode has no score, or the margin is negative.
    """
    if margin < 0:
        raise InvalidInputError(f"the gate margin must be >= 0, got {margin}")
    if not modes:
        raise InvalidInputError("the gate needs at least one mode to compare")

    def score(scores: Mapping[str, float], who: str) -> float:
        missing = [m for m in modes if m not in scores]
        if missing:
            raise InvalidInputError(f"the {who} has no held-out score for mode(s) {missing}")
        return sum(float(scores[m]) for m in modes) / len(modes)

    cand = score(candidate, "candidate")
    if promoted is None:
        return GateDecision(promote=True, candidate=cand, promoted=None, margin=margin,
                            modes=list(modes), reason="nothing is promoted yet")
    prom = score(promoted, "promoted model")
    ok = cand >= prom + margin
    verb = "beats" if ok else "does not beat"
    return GateDecision(promote=ok, candidate=cand, promoted=prom, margin=margin,
                        modes=list(modes),
                        reason=f"candidate {cand:.3f} {verb} promoted {prom:.3f} + margin "
                               f"{margin:.3f} on {'/'.join(modes)}")


class ModelRegistry:
    """Model versions in the trace store's database. See the module docstring.

    Args:
        store: an open `TraceStore` (its engine is used; the store stays the caller's).
    """

    def __init__(self, store: Any):
        self.store = store
        self.engine = store.engine

    @contextmanager
    def _session(self, action: str, *, write: bool = False) -> Iterator[Session]:
        bind = writer(self.engine) if write else self.engine
        try:
            with Session(bind, expire_on_commit=False) as s, s.begin():
                yield s
        except IntegrityError as e:
            raise InvalidInputError(f"cannot {action}: {str(e.orig).splitlines()[0]}") from None
        except SQLAlchemyError as e:
            raise StoreError(f"cannot {action}: {type(e).__name__}: {e}") from e

    def _model(self, row: ModelVersionRow, promoted_id: str | None) -> ModelVersion:
        return ModelVersion(id=row.id, number=row.number, parent_id=row.parent_id,
                            base_model=row.base_model, path=row.path,
                            datasets=list(row.datasets or []), training=dict(row.training or {}),
                            metrics=dict(row.metrics or {}), gate=dict(row.gate or {}),
                            note=row.note or "", created_at=row.created_at,
                            promoted_at=row.promoted_at, promoted=row.id == promoted_id)

    @staticmethod
    def _pointer(s: Session) -> str | None:
        row = s.get(ModelPointerRow, PROMOTED)
        return row.version_id if row is not None else None

    def register(self, path: str | Path, *, base_model: str, parent_id: str | None = None,
                 datasets: list[dict[str, Any]] | None = None,
                 training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                 note: str = "") -> ModelVersion:
        """Register a complete checkpoint directory as the next version number.

        Raises:
            InvalidInputError: the directory is not a complete model, or the parent is unknown.
        """
        path = Path(path).resolve()
        if not is_complete(path):
            raise InvalidInputError(f"{path} is not a complete model directory (config and "
                                    "weights); a version is registered only when complete")
        for _attempt in range(5):  # numbers are unique: a concurrent register makes us retry
            try:
                with self._session("register a model version", write=True) as s:
                    if parent_id is not None and s.get(ModelVersionRow, parent_id) is None:
                        raise InvalidInputError(f"unknown parent version {parent_id!r}")
                    number = (s.scalar(select(func.max(ModelVersionRow.number))) or 0) + 1
                    row = ModelVersionRow(
                        id=f"mv-{uuid.uuid4().hex[:12]}", number=number, parent_id=parent_id,
                        base_model=base_model, path=str(path),
                        datasets=json_safe(datasets or []), training=json_safe(training or {}),
                        metrics=json_safe(metrics or {}), gate={}, note=note,
                        created_at=utcnow(), promoted_at=None)
                    s.add(row)
                    s.flush()
                    return self._model(row, self._pointer(s))
            except InvalidInputError as e:
                if "UNIQUE" not in str(e).upper() and "unique" not in str(e):
                    raise
        raise StoreError("could not allocate a version number after 5 attempts")

    def get(self, ref: str) -> ModelVersion:
        """A version by `v<N>`, id (or unique prefix) or `promoted`.

        Raises:
            NotFoundError: no such version (or nothing promoted).
        """
        ref = ref.strip()
        with self._session("read a model version") as s:
            promoted = self._pointer(s)
            if ref == PROMOTED:
                row = s.get(ModelVersionRow, promoted) if promoted else None
            elif ref.startswith("v") and ref[1:].isdigit():
                row = s.scalar(select(ModelVersionRow)
                               .where(ModelVersionRow.number == int(ref[1:])))
            else:
                rows = list(s.scalars(select(ModelVersionRow)
                                      .where(ModelVersionRow.id.startswith(ref)).limit(2)))
                row = rows[0] if len(rows) == 1 else None
            if row is None:
                raise NotFoundError(f"no model version {ref!r}", id=ref)
            return self._model(row, promoted)

    def list(self, limit: int = 100) -> list[ModelVersion]:
        """Versions, newest first."""
        with self._session("list model versions") as s:
            promoted = self._pointer(s)
            rows = s.scalars(select(ModelVersionRow).order_by(ModelVersionRow.number.desc())
                             .limit(limit))
            return [self._model(r, promoted) for r in rows]

    def promoted(self) -> ModelVersion | None:
        """The promoted version, or None."""
        try:
            return self.get(PROMOTED)
        except NotFoundError:
            return None

    def resolve(self, ref: str) -> VersionRef:
        """What a backend would load for `ref` (checks the directory exists)."""
        if not is_version_ref(ref):
            raise NotFoundError(f"{ref!r} is not a model version reference", id=ref)
        return resolve_version(ref, store=self.store)

    def update(self, version_id: str, *, metrics: dict[str, Any] | None = None,
               gate: dict[str, Any] | None = None) -> ModelVersion:
        """Merge new metrics and/or set the gate decision of a version."""
        with self._session("update a model version", write=True) as s:
            row = s.get(ModelVersionRow, version_id)
            if row is None:
                raise NotFoundError(f"no model version {version_id!r}", id=version_id)
            if metrics:
                row.metrics = json_safe({**(row.metrics or {}), **metrics})
            if gate is not None:
                row.gate = json_safe(gate)
            return self._model(row, self._pointer(s))

    def promote(self, ref: str, *, reason: str = "", action: str = "promote") -> ModelVersion:
        """Point `promoted` at a version, atomically, and log the move.

        Raises:
            NotFoundError: no such version.
            InvalidInputError: its model directory is missing or incomplete.
        """
        target = self.get(ref)
        if not is_complete(target.path):
            raise InvalidInputError(f"version {target.label} has no complete model at "
                                    f"{target.path}; refusing to promote it")
        self._ensure_pointer()
        now = utcnow()
        with self._session(f"promote {target.label}", write=True) as s:
            # Lock the pointer row (PostgreSQL; SQLite's write transaction already excludes
            # other writers), so the history's `previous` is the version really replaced and
            # history ids follow the order of the moves.
            pointer = s.get(ModelPointerRow, PROMOTED, with_for_update=True)
            previous = pointer.version_id if pointer is not None else None
            s.execute(update(ModelPointerRow).where(ModelPointerRow.name == PROMOTED)
                      .values(version_id=target.id, updated_at=now))
            s.add(ModelPromotionRow(pointer=PROMOTED, version_id=target.id, previous_id=previous,
                                    action=action, reason=reason[:4000], at=now))
            row = s.get(ModelVersionRow, target.id)
            row.promoted_at = now
            return self._model(row, target.id)

    def _ensure_pointer(self) -> None:
        """Create the (empty) promoted pointer row once, so every move is a locked UPDATE."""
        try:
            with self._session("create the promoted pointer", write=True) as s:
                if s.get(ModelPointerRow, PROMOTED) is None:
                    s.add(ModelPointerRow(name=PROMOTED, version_id=None, updated_at=utcnow()))
        except InvalidInputError:
            pass  # another process created it first

    def history(self, limit: int = 100) -> list[Promotion]:
        """Moves of the promoted pointer, newest first."""
        with self._session("read the promotion history") as s:
            rows = s.scalars(select(ModelPromotionRow)
                             .where(ModelPromotionRow.pointer == PROMOTED)
                             .order_by(ModelPromotionRow.id.desc()).limit(limit))
            return [Promotion(id=r.id, version_id=r.version_id, previous_id=r.previous_id,
                              action=r.action, reason=r.reason, at=r.at) for r in rows]

    def rollback(self, to: str | None = None, *, reason: str = "") -> ModelVersion:
        """Promote an earlier version: `to` (any version), or the one promoted before this one.

        Raises:
            NotFoundError: nothing to roll back to.
        """
        if to is None:
            current = self.promoted()
            earlier = [p.previous_id for p in self.history()
                       if current is not None and p.version_id == current.id
                       and p.action == "promote" and p.previous_id]
            if not earlier:
                raise NotFoundError("no earlier promoted version to roll back to", id=PROMOTED)
            to = earlier[0]
        return self.promote(to, reason=reason or "rollback", action="rollback")
