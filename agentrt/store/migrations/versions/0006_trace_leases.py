"""Leases of running traces (owner, heartbeat) and superseded steps (task, superseded).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types as they were at this revision (never import models here).
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("traces", sa.Column("owner", sa.String(length=255), nullable=True))
    op.add_column("traces", sa.Column("heartbeat_at", TIMESTAMP, nullable=True))
    op.add_column("steps", sa.Column("task", sa.String(length=512), nullable=True))
    op.add_column("steps", sa.Column("superseded", sa.Boolean(), nullable=False,
                                     server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("superseded")
        batch.drop_column("task")
    with op.batch_alter_table("traces") as batch:
        batch.drop_column("heartbeat_at")
        batch.drop_column("owner")
