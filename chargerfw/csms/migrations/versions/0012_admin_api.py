"""admin API: its tokens (digests), who asked for each operator command, and the events of
each charger (command outcomes and status notifications) that the API reads

Revision ID: 0012_admin_api
Revises: 0011_charger_files
Create Date: 2026-12-03 10:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0012_admin_api'
down_revision = '0011_charger_files'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('revoked_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_tokens')),
    sa.UniqueConstraint('name', name=op.f('uq_admin_tokens_name')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_admin_tokens_token_hash'))
    )
    op.create_table('charge_point_events',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=60), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_charge_point_events_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_point_events'))
    )
    op.create_index(op.f('ix_charge_point_events_charge_point_id'), 'charge_point_events',
                    ['charge_point_id'], unique=False)
    with op.batch_alter_table('operator_commands') as batch:
        batch.add_column(sa.Column('requested_by', sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('operator_commands') as batch:
        batch.drop_column('requested_by')
    op.drop_index(op.f('ix_charge_point_events_charge_point_id'),
                  table_name='charge_point_events')
    op.drop_table('charge_point_events')
    op.drop_table('admin_tokens')
