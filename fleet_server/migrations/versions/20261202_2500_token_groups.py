"""token groups: a staff API token may see a station group (every station under it), as staff users may

Revision ID: 2500_token_groups
Revises: 2300_station_edits
Create Date: 2026-12-02 25:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2500_token_groups"
down_revision: str | None = "2300_station_edits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("group_id", sa.String(length=64), nullable=True))
        batch.create_foreign_key(op.f("fk_api_tokens_group_id_station_groups"), "station_groups", ["group_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_constraint(op.f("fk_api_tokens_group_id_station_groups"), type_="foreignkey")
        batch.drop_column("group_id")
