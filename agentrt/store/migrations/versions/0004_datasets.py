"""Built training datasets and the traces each was built from.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as they were at this revision (never import models here).
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("filters", JSON, nullable=False),
        sa.Column("meta", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datasets")),
        sa.UniqueConstraint("name", name=op.f("uq_datasets_name")),
    )
    op.create_index("ix_datasets_kind_created_at", "datasets", ["kind", "created_at"])
    op.create_index("ix_datasets_content_hash", "datasets", ["content_hash"])
    op.create_table(
        "dataset_traces",
        sa.Column("dataset_id", sa.String(length=32), nullable=False),
        sa.Column("trace_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"],
            name=op.f("fk_dataset_traces_dataset_id_datasets"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "trace_id", name=op.f("pk_dataset_traces")),
    )
    op.create_index("ix_dataset_traces_trace_id", "dataset_traces", ["trace_id"])


def downgrade() -> None:
    op.drop_index("ix_dataset_traces_trace_id", table_name="dataset_traces")
    op.drop_table("dataset_traces")
    op.drop_index("ix_datasets_content_hash", table_name="datasets")
    op.drop_index("ix_datasets_kind_created_at", table_name="datasets")
    op.drop_table("datasets")
