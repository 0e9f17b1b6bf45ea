"""Tables of the model registry: trained model versions, the promoted pointer, promotions.

`model_versions` records a checkpoint that was written to disk in full (its directory renamed
into place before the row is inserted): its number (v1, v2, ...), parent version, base model,
the datasets it was trained on with their content hashes, the training config, evaluation
metrics, the gate's decision and the directory. `model_pointers` holds one row per pointer name
(today only "promoted"); moving a pointer is a single-row UPDATE inside a transaction, so a
reader sees the old version or the new one, never anything in between. `model_promotions` is
the append-only history of pointer moves (promotions and rollbacks), newest last.

Version ids are plain strings in the pointer and history tables (no foreign keys), like the
dataset lineage: history outlives any clean-up of old versions. This module only declares the
tables; `agentrt.training.registry` writes them and `agentrt.llm.versions` reads the pointer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from agentrt.store.models import Base, BigIntId, JSONType, UTCDateTime

__all__ = ["ModelVersionRow", "ModelPointerRow", "ModelPromotionRow"]


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
