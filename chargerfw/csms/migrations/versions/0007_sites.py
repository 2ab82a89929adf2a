"""sites: load management (sites, members, allocation state) and eMSP charging profiles

Revision ID: 0007_sites
Revises: 0006_hubs
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0007_sites'
down_revision = '0006_hubs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sites',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('max_current_a', sa.Float(), nullable=False),
    sa.Column('parent_id', sa.String(length=36), nullable=True),
    sa.Column('fallback_a', sa.Float(), nullable=False),
    sa.Column('stack_level', sa.Integer(), nullable=False),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['sites.id'],
                            name=op.f('fk_sites_parent_id_sites')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites'))
    )
    op.create_table('site_members',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('site_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_site_members_charge_point_id_charge_points')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'],
                            name=op.f('fk_site_members_site_id_sites')),
    sa.PrimaryKeyConstraint('charge_point_id', name=op.f('pk_site_members'))
    )
    op.create_index(op.f('ix_site_members_site_id'), 'site_members', ['site_id'],
                    unique=False)
    op.create_table('site_allocations',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('limit_a', sa.Float(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('profile_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.Integer(), nullable=True),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('updated_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_site_allocations_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('charge_point_id', 'connector_id',
                            name=op.f('pk_site_allocations'))
    )
    op.create_table('session_charging_profiles',
    sa.Column('transaction_id', sa.Integer(), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('profile', sa.JSON(), nullable=False),
    sa.Column('updated_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'],
                            name=op.f('fk_session_charging_profiles_partner_id_partners')),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'],
                            name=op.f('fk_session_charging_profiles_transaction_id_'
                                      'transactions')),
    sa.PrimaryKeyConstraint('transaction_id', name=op.f('pk_session_charging_profiles'))
    )


def downgrade() -> None:
    op.drop_table('session_charging_profiles')
    op.drop_table('site_allocations')
    op.drop_index(op.f('ix_site_members_site_id'), table_name='site_members')
    op.drop_table('site_members')
    op.drop_table('sites')
