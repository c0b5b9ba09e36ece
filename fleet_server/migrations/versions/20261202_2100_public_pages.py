"""public pages: stations.public_page and station_groups.public_page (off by default)

Revision ID: 2100_public_pages
Revises: 1900_channel_rollups
Create Date: 2026-12-02 21:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2100_public_pages"
down_revision: str | None = "1900_channel_rollups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("stations", "station_groups"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("public_page", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    for table in ("station_groups", "stations"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("public_page")
