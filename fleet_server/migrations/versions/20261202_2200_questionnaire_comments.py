"""web questionnaire and comments: station_web_settings, questionnaire_responses and _answers
(the national questionnaire item by item), web_comments (masked open comments)

Revision ID: 2200_questionnaire_comments
Revises: 2100_public_pages
Create Date: 2026-12-02 22:00:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2200_questionnaire_comments"
down_revision: str | None = "2100_public_pages"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "station_web_settings",
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("questionnaire", sa.Boolean(), nullable=False),
        sa.Column("comments", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_station_web_settings_station_id_stations")),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_station_web_settings")),
    )
    op.create_table(
        "questionnaire_responses",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("questionnaire", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("channel IN ('kiosk', 'web', 'phone', 'sms')", name=op.f("ck_questionnaire_responses_channel")),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"],
                                name=op.f("fk_questionnaire_responses_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questionnaire_responses")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_questionnaire_responses_submission_id")),
    )
    op.create_index(op.f("ix_questionnaire_responses_station_id_received_at"), "questionnaire_responses",
                    ["station_id", "received_at"])
    op.create_table(
        "questionnaire_answers",
        sa.Column("response_id", BIG_ID, nullable=False),
        sa.Column("question_id", sa.String(length=64), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=True),
        sa.ForeignKeyConstraint(["response_id"], ["questionnaire_responses.id"], ondelete="CASCADE",
                                name=op.f("fk_questionnaire_answers_response_id_questionnaire_responses")),
        sa.PrimaryKeyConstraint("response_id", "question_id", name=op.f("pk_questionnaire_answers")),
    )
    op.create_index(op.f("ix_questionnaire_answers_question_id"), "questionnaire_answers", ["question_id"])
    op.create_table(
        "web_comments",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("submission_id", sa.Uuid(), nullable=False),
        sa.Column("station_id", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("masked", sa.Integer(), nullable=False),
        sa.Column("lang", sa.String(length=8), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["station_id"], ["stations.id"], name=op.f("fk_web_comments_station_id_stations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_comments")),
        sa.UniqueConstraint("submission_id", name=op.f("uq_web_comments_submission_id")),
    )
    op.create_index(op.f("ix_web_comments_station_id_received_at"), "web_comments", ["station_id", "received_at"])
    op.create_index(op.f("ix_web_comments_received_at"), "web_comments", ["received_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_web_comments_received_at"), table_name="web_comments")
    op.drop_index(op.f("ix_web_comments_station_id_received_at"), table_name="web_comments")
    op.drop_table("web_comments")
    op.drop_index(op.f("ix_questionnaire_answers_question_id"), table_name="questionnaire_answers")
    op.drop_table("questionnaire_answers")
    op.drop_index(op.f("ix_questionnaire_responses_station_id_received_at"), table_name="questionnaire_responses")
    op.drop_table("questionnaire_responses")
    op.drop_table("station_web_settings")
