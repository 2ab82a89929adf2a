"""local_lists: each charger's local authorization list, and push requests

Revision ID: 0009_local_lists
Revises: 0008_token_auth_fields
Create Date: 2026-12-10 11:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0009_local_lists'
down_revision = '0008_token_auth_fields'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('local_lists',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('list_version', sa.BigInteger(), nullable=False),
    sa.Column('entries', sa.JSON(), nullable=False),
    sa.Column('updated_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_local_lists_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('charge_point_id', name=op.f('pk_local_lists'))
    )
    op.create_table('local_list_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('requested_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('claimed_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('finished_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_local_list_requests_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_local_list_requests'))
    )


def downgrade() -> None:
    op.drop_table('local_list_requests')
    op.drop_table('local_lists')
