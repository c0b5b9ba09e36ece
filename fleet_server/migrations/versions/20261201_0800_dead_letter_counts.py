"""dead letters: one row per distinct refused message (digest, count, last seen); the stored copy of a conflicting duplicate

Revision ID: 0800_dead_letter_counts
Revises: 0700_gaps_unique
Create Date: 2026-12-01 15:40:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0800_dead_letter_counts"
down_revision: str | None = "0700_gaps_unique"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Rows refused before this revision keep digest NULL (NULLs never collide in a unique index):
    # each stays its own row with count 1.
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.add_column(sa.Column("digest", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("count", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("stored_payload", sa.LargeBinary(), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_dead_letters_digest"), ["digest"])
    op.execute("UPDATE dead_letters SET last_seen_at = received_at")


def downgrade() -> None:
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_dead_letters_digest"), type_="unique")
        batch_op.drop_column("stored_payload")
        batch_op.drop_column("last_seen_at")
        batch_op.drop_column("count")
        batch_op.drop_column("digest")
