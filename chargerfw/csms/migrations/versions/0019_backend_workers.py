"""backend_workers, backend_calls and charge_points.worker_id / connected_from: several
backend processes on one PostgreSQL database

Revision ID: 0019_backend_workers
Revises: 0018_page_indexes
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0019_backend_workers'
down_revision = '0018_page_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'backend_workers',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('host', sa.String(length=255), nullable=False),
        sa.Column('pid', sa.Integer(), nullable=False),
        sa.Column('started_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
        sa.Column('heartbeat_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
        sa.Column('leading', sa.Boolean(), server_default='0', nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backend_workers')))
    op.create_table(
        'backend_calls',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('charge_point_id', sa.String(length=48), nullable=False),
        sa.Column('caller_id', sa.String(length=40), nullable=False),
        sa.Column('holder_id', sa.String(length=40), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('answer', sa.JSON(), nullable=True),
        sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_backend_calls')))
    op.create_index(op.f('ix_backend_calls_holder_id'), 'backend_calls', ['holder_id'])
    op.add_column('charge_points', sa.Column('worker_id', sa.String(length=40), nullable=True))
    op.add_column('charge_points',
                  sa.Column('connected_from', sa.String(length=64), nullable=True))


def downgrade() -> None:
    # In place (SQLite 3.35+ drops a column itself): copying charge_points is what its
    # foreign keys would not allow.
    op.drop_column('charge_points', 'connected_from')
    op.drop_column('charge_points', 'worker_id')
    op.drop_index(op.f('ix_backend_calls_holder_id'), table_name='backend_calls')
    op.drop_table('backend_calls')
    op.drop_table('backend_workers')
