"""gaps: one open row per range start, a lock row per kiosk, what the kiosk still holds

Open gap rows copied by concurrent passes (issue 12: 2 rows became 66 in 30 s) are
resolved here, keeping the oldest of each (device_id, first_seq), before the partial
unique index makes new copies impossible.

Revision ID: 0700_gaps_unique
Revises: 0600_health_probes
Create Date: 2026-12-01 15:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0700_gaps_unique"
down_revision: str | tuple[str, ...] | None = "0600_health_probes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "UPDATE seq_gaps SET resolved_at = CURRENT_TIMESTAMP WHERE resolved_at IS NULL AND id NOT IN "
        "(SELECT min(id) FROM seq_gaps WHERE resolved_at IS NULL GROUP BY device_id, first_seq)"
    )
    with op.batch_alter_table("seq_gaps", schema=None) as batch_op:
        batch_op.create_index(
            "uq_seq_gaps_open_first_seq", ["device_id", "first_seq"], unique=True,
            sqlite_where=sa.text("resolved_at IS NULL"), postgresql_where=sa.text("resolved_at IS NULL"),
        )
    op.create_table(
        "gap_checks",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_gap_checks_device_id_devices")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_gap_checks")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("held_from_seq", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("held_from_seq")
    op.drop_table("gap_checks")
    with op.batch_alter_table("seq_gaps", schema=None) as batch_op:
        batch_op.drop_index("uq_seq_gaps_open_first_seq")
