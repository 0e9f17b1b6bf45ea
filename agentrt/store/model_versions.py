"""Tables of the model registry: trained model versions, the promoted pointer, promotions.

`model_versions` records a checkpoint that was written to disk in full (its directory renamed
into place before the row is inserted): its number (v1, v2, ...), parent version, base model,
the datasets it was trained on with their content hashes, the training config, evaluation
metrics, the gate's decision and the directory. `model_pointers` holds one row per pointer name
(today only "promoted"); moving a pointer is a single-row UPDATE inside a transaction, so a
reader sees the old version or the new one, never anything in between. `model_promotions` is
the append-only history of pointer moves (promotions and rollbacks), newest last.

Version ids are plain strings in the pointer and history tables (no foreign keys), like the
dataset lineage: history outlives any clean-up of old versions.

Below the tables, every query of them, each in its own transaction, returning
`agentrt.store.records.ModelVersion` and `Promotion`: `agentrt.training.registry` registers,
updates and promotes through them, `agentrt.llm.versions` resolves references through
`find_versions`. This module does not parse version references (`v3`, `promoted`) nor check
model directories; its callers do.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Index, Integer, String, Text, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from agentrt.core.errors import InvalidInputError, NotFoundError, StoreError
from agentrt.store.engine import store_error, transaction
from agentrt.store.jsonsafe import json_safe
from agentrt.store.models import Base, BigIntId, JSONType, UTCDateTime
from agentrt.store.records import ModelVersion, Promotion, utcnow

__all__ = ["ModelVersionRow", "ModelPointerRow", "ModelPromotionRow", "PROMOTED",
           "find_versions", "list_versions", "register_version", "update_version",
           "move_pointer", "promotion_history"]

#: The pointer serving follows (the same name as the model reference `agentrt.llm.base.PROMOTED`).
PROMOTED = "promoted"
_REGISTER_TRIES = 5


class ModelVersionRow(Base):
    """A trained checkpoint, complete on disk, with its lineage and scores."""

    __tablename__ = "model_versions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, unique=True)
    parent_id: Mapped[str | None] = mapped_column(String(32))
    base_model: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    datasets: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    training: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    gate: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_model_versions_created_at", "created_at"),)


class ModelPointerRow(Base):
    """A named pointer at one version ("promoted")."""

    __tablename__ = "model_pointers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ModelPromotionRow(Base):
    """One move of a pointer: which version it left, which it reached, and why."""

    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    pointer: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str | None] = mapped_column(String(32))
    previous_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_model_promotions_pointer_id", "pointer", "id"),)


def _record(row: ModelVersionRow, promoted_id: str | None) -> ModelVersion:
    return ModelVersion(id=row.id, number=row.number, parent_id=row.parent_id,
                        base_model=row.base_model, path=row.path,
                        datasets=list(row.datasets or []), training=dict(row.training or {}),
                        metrics=dict(row.metrics or {}), gate=dict(row.gate or {}),
                        note=row.note or "", created_at=row.created_at,
                        promoted_at=row.promoted_at, promoted=row.id == promoted_id)


def _pointer(s: Session, name: str = PROMOTED) -> str | None:
    row = s.get(ModelPointerRow, name)
    return row.version_id if row is not None else None


def find_versions(engine: Engine, *, pointer: str | None = None, number: int | None = None,
                  prefix: str | None = None) -> list[ModelVersion] | None:
    """The versions a pointer names, with a number, or whose id starts with `prefix` (pass one).

    Returns:
        The matches (at most two for a prefix: more than one means ambiguous); None when
        `pointer` is given and points at no version.

    Raises:
        StoreError: the database failed.
    """
    with transaction(engine, "read a model version") as s:
        promoted = _pointer(s)
        if pointer is not None:
            target = promoted if pointer == PROMOTED else _pointer(s, pointer)
            if target is None:
                return None
            found = [r for r in [s.get(ModelVersionRow, target)] if r is not None]
        elif number is not None:
            found = list(s.scalars(select(ModelVersionRow)
                                   .where(ModelVersionRow.number == number)))
        else:
            found = list(s.scalars(select(ModelVersionRow)
                                   .where(ModelVersionRow.id.startswith(prefix or "")).limit(2)))
        return [_record(r, promoted) for r in found]


def list_versions(engine: Engine, limit: int = 100) -> list[ModelVersion]:
    """Versions, newest first."""
    with transaction(engine, "list model versions") as s:
        promoted = _pointer(s)
        rows = s.scalars(select(ModelVersionRow).order_by(ModelVersionRow.number.desc())
                         .limit(limit))
        return [_record(r, promoted) for r in rows]


def register_version(engine: Engine, *, path: str, base_model: str, parent_id: str | None,
                     datasets: list[dict[str, Any]], training: dict[str, Any],
                     metrics: dict[str, Any], note: str) -> ModelVersion:
    """Insert a version under the next free number (retried when a concurrent insert took it).

    Raises:
        InvalidInputError: the parent is unknown, or another constraint failed.
        StoreError: the database failed, or no number was free after several tries.
    """
    action = "register a model version"
    for _attempt in range(_REGISTER_TRIES):
        try:
            with transaction(engine, action, write=True, conflict=None) as s:
                if parent_id is not None and s.get(ModelVersionRow, parent_id) is None:
                    raise InvalidInputError(f"unknown parent version {parent_id!r}")
                number = (s.scalar(select(func.max(ModelVersionRow.number))) or 0) + 1
                row = ModelVersionRow(
                    id=f"mv-{uuid.uuid4().hex[:12]}", number=number, parent_id=parent_id,
                    base_model=base_model, path=path, datasets=json_safe(datasets),
                    training=json_safe(training), metrics=json_safe(metrics), gate={},
                    note=note, created_at=utcnow(), promoted_at=None)
                s.add(row)
                s.flush()
                return _record(row, _pointer(s))
        except IntegrityError as e:
            if "unique" not in str(e.orig).lower():
                raise store_error(e, action, kind=InvalidInputError) from e
    raise StoreError(f"could not allocate a version number after {_REGISTER_TRIES} attempts")


def update_version(engine: Engine, version_id: str, *, metrics: dict[str, Any] | None = None,
                   gate: dict[str, Any] | None = None) -> ModelVersion:
    """Merge new metrics into a version and/or set its gate decision.

    Raises:
        NotFoundError: no version has this id.
    """
    with transaction(engine, "update a model version", write=True,
                     conflict=InvalidInputError) as s:
        row = s.get(ModelVersionRow, version_id)
        if row is None:
            raise NotFoundError(f"no model version {version_id!r}", id=version_id)
        if metrics:
            row.metrics = json_safe({**(row.metrics or {}), **metrics})
        if gate is not None:
            row.gate = json_safe(gate)
        return _record(row, _pointer(s))


def move_pointer(engine: Engine, target: ModelVersion, *, action: str, reason: str,
                 pointer: str = PROMOTED) -> ModelVersion:
    """Point `pointer` at `target` in one transaction, with its history row.

    The pointer row is created (empty) first if missing, so that every move is an UPDATE of a
    locked row: of concurrent moves, each sees the one before it as `previous`.
    """
    try:
        with transaction(engine, f"create the {pointer} pointer", write=True, conflict=None) as s:
            if s.get(ModelPointerRow, pointer) is None:
                s.add(ModelPointerRow(name=pointer, version_id=None, updated_at=utcnow()))
    except IntegrityError:
        pass  # another process created it first
    now = utcnow()
    with transaction(engine, f"promote {target.label}", write=True,
                     conflict=InvalidInputError) as s:
        # Lock the pointer row (PostgreSQL; SQLite's write transaction already excludes
        # other writers), so the history's `previous` is the version really replaced and
        # history ids follow the order of the moves.
        row = s.get(ModelPointerRow, pointer, with_for_update=True)
        previous = row.version_id if row is not None else None
        s.execute(update(ModelPointerRow).where(ModelPointerRow.name == pointer)
                  .values(version_id=target.id, updated_at=now))
        s.add(ModelPromotionRow(pointer=pointer, version_id=target.id, previous_id=previous,
                                action=action, reason=reason[:4000], at=now))
        version = s.get(ModelVersionRow, target.id)
        if version is None:
            raise NotFoundError(f"no model version {target.id!r}", id=target.id)
        version.promoted_at = now
        return _record(version, target.id if pointer == PROMOTED else _pointer(s))


def promotion_history(engine: Engine, limit: int = 100,
                      pointer: str = PROMOTED) -> list[Promotion]:
    """Moves of a pointer, newest first."""
    with transaction(engine, "read the promotion history") as s:
        rows = s.scalars(select(ModelPromotionRow).where(ModelPromotionRow.pointer == pointer)
                         .order_by(ModelPromotionRow.id.desc()).limit(limit))
        return [Promotion(id=r.id, version_id=r.version_id, previous_id=r.previous_id,
                          action=r.action, reason=r.reason, at=r.at) for r in rows]
