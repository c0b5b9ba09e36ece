"""health probes: the row /healthz writes to prove the database takes writes

Revision ID: 0600_health_probes
Revises: 0500_seq_gaps
Create Date: 2026-12-01 16:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0600_health_probes"
down_revision: str | None = "0500_seq_gaps"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "health_probes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_health_probes")),
    )


def downgrade() -> None:
    op.drop_table("health_probes")
