"""broker_bridges: the regional brokers' bridge accounts on the central broker

Revision ID: 2400_broker_bridges
Revises: 2200_questionnaire_comments
Create Date: 2026-12-02 24:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2400_broker_bridges"
down_revision: str | None = "2200_questionnaire_comments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broker_bridges",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_broker_bridges")),
    )


def downgrade() -> None:
    op.drop_table("broker_bridges")
