"""The model registry: trained model versions, the promoted pointer and its history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as they were at this revision (never import models here).
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.String(length=32), nullable=True),
        sa.Column("base_model", sa.String(length=255), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("datasets", JSON, nullable=False),
        sa.Column("training", JSON, nullable=False),
        sa.Column("metrics", JSON, nullable=False),
        sa.Column("gate", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("promoted_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_versions")),
        sa.UniqueConstraint("number", name=op.f("uq_model_versions_number")),
    )
    op.create_index("ix_model_versions_created_at", "model_versions", ["created_at"])
    op.create_table(
        "model_pointers",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=True),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_model_pointers")),
    )
    op.create_table(
        "model_promotions",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("pointer", sa.String(length=64), nullable=False),
        sa.Column("version_id", sa.String(length=32), nullable=True),
        sa.Column("previous_id", sa.String(length=32), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_promotions")),
    )
    op.create_index("ix_model_promotions_pointer_id", "model_promotions", ["pointer", "id"])


def downgrade() -> None:
    op.drop_index("ix_model_promotions_pointer_id", table_name="model_promotions")
    op.drop_table("model_promotions")
    op.drop_table("model_pointers")
    op.drop_index("ix_model_versions_created_at", table_name="model_versions")
    op.drop_table("model_versions")
