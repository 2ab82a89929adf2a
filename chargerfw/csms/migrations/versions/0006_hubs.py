"""hubs: parties reachable through a hub, and token pulls

Revision ID: 0006_hubs
Revises: 0005_locations_sessions
Create Date: 2026-12-02 21:35:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0006_hubs'
down_revision = '0005_locations_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hub_parties',
    sa.Column('hub_id', sa.Integer(), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('party_id', sa.String(length=3), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['hub_id'], ['partners.id'],
                            name=op.f('fk_hub_parties_hub_id_partners')),
    sa.PrimaryKeyConstraint('hub_id', 'country_code', 'party_id', 'role',
                            name=op.f('pk_hub_parties'))
    )
    op.create_table('token_pulls',
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('last_success_from', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('last_attempt_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'],
                            name=op.f('fk_token_pulls_partner_id_partners')),
    sa.PrimaryKeyConstraint('partner_id', name=op.f('pk_token_pulls'))
    )


def downgrade() -> None:
    op.drop_table('token_pulls')
    op.drop_table('hub_parties')
