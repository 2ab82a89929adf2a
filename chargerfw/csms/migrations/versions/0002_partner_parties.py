"""partner parties and token routes

Each partner gets the parties the operator gave it (``partner_parties``); unknown tokens are
routed to a party by uid prefix (``token_routes``). A partner registered before this revision
keeps the party it declared then, unless another partner declared the same one (then neither
gets it, and the operator decides with ``chargerfw csms partner party``).

Revision ID: 0002_partner_parties
Revises: 0001
Create Date: 2026-12-02 21:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002_partner_parties'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('partner_parties',
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('party_id', sa.String(length=3), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'],
                            name=op.f('fk_partner_parties_partner_id_partners')),
    sa.PrimaryKeyConstraint('partner_id', 'country_code', 'party_id', 'role',
                            name=op.f('pk_partner_parties')),
    sa.UniqueConstraint('country_code', 'party_id', 'role',
                        name='uq_partner_parties_party_role')
    )
    op.create_table('token_routes',
    sa.Column('uid_prefix', sa.String(length=36), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('party_id', sa.String(length=3), nullable=False),
    sa.PrimaryKeyConstraint('uid_prefix', name=op.f('pk_token_routes'))
    )
    # Registered partners keep the one party they declared, when no other partner declared it.
    op.execute(sa.text(
        "INSERT INTO partner_parties (partner_id, country_code, party_id, role) "
        "SELECT p.id, UPPER(p.country_code), UPPER(p.party_id), p.role FROM partners p "
        "WHERE p.registered AND p.country_code IS NOT NULL AND p.party_id IS NOT NULL "
        "AND (SELECT COUNT(*) FROM partners q WHERE q.registered "
        "AND UPPER(q.country_code) = UPPER(p.country_code) "
        "AND UPPER(q.party_id) = UPPER(p.party_id) AND q.role = p.role) = 1"))


def downgrade() -> None:
    op.drop_table('token_routes')
    op.drop_table('partner_parties')
