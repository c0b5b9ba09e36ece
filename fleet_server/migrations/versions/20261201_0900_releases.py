"""releases and rollouts: signed kiosk releases, their files, rollouts in waves and each kiosk's part

Revision ID: 0900_releases
Revises: 0800_dead_letter_counts
Create Date: 2026-12-01 15:30:00
"""
from __future__ import annotations

from typing import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0900_releases'
down_revision: str | None = '0800_dead_letter_counts'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('releases',
    sa.Column('version', sa.String(length=64), nullable=False),
    sa.Column('manifest', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=200), nullable=False),
    sa.Column('total_bytes', sa.BigInteger(), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_by', sa.String(length=64), nullable=True),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('withdrawn_reason', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_releases'))
    )
    op.create_table('release_files',
    sa.Column('release_version', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['release_version'], ['releases.version'], name=op.f('fk_release_files_release_version_releases')),
    sa.PrimaryKeyConstraint('release_version', 'name', name=op.f('pk_release_files'))
    )
    with op.batch_alter_table('release_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_release_files_sha256'), ['sha256'], unique=False)

    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('release_version', sa.String(length=64), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('waves', sa.JSON(), nullable=False),
    sa.Column('wave_healthy_s', sa.Double(), nullable=False),
    sa.Column('max_failures', sa.Integer(), nullable=False),
    sa.Column('install_window', sa.String(length=16), nullable=False),
    sa.Column('health_timeout_s', sa.Double(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('current_wave', sa.Integer(), nullable=False),
    sa.Column('wave_healthy_since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('running', 'paused', 'halted', 'aborted', 'done')", name=op.f('ck_rollouts_state')),
    sa.ForeignKeyConstraint(['release_version'], ['releases.version'], name=op.f('fk_rollouts_release_version_releases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    op.create_table('rollout_devices',
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=64), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('from_version', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('targeted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("state IN ('pending', 'targeted', 'healthy', 'failed', 'skipped')", name=op.f('ck_rollout_devices_state')),
    sa.ForeignKeyConstraint(['device_id'], ['devices.id'], name=op.f('fk_rollout_devices_device_id_devices')),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_devices_rollout_id_rollouts')),
    sa.PrimaryKeyConstraint('rollout_id', 'device_id', name=op.f('pk_rollout_devices'))
    )
    with op.batch_alter_table('rollout_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_devices_device_id_state'), ['device_id', 'state'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('rollout_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_devices_device_id_state'))

    op.drop_table('rollout_devices')
    op.drop_table('rollouts')
    with op.batch_alter_table('release_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_release_files_sha256'))

    op.drop_table('release_files')
    op.drop_table('releases')

