"""seq gaps: missing answers per kiosk, the resend asked for them, unrecoverable ones

Revision ID: 0500_seq_gaps
Revises: 0400_notes
Create Date: 2026-11-27 11:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0500_seq_gaps"
down_revision: str | None = "0400_notes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "seq_gaps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resend_cmd_id", sa.String(length=64), nullable=True),
        sa.Column("resend_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ack_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("unrecoverable_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_seq_gaps_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_seq_gaps")),
    )
    with op.batch_alter_table("seq_gaps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_seq_gaps_device_id_resolved_at"), ["device_id", "resolved_at"],
                              unique=False)


def downgrade() -> None:
    op.drop_table("seq_gaps")
