"""OCPI list pages by key: indexes that lead with the token's party for partners' pages of
sessions and CDRs, the token's party kept with each CDR (copied from its transaction), and
completed sessions' OCPI objects kept as they were when they completed

Revision ID: 0018_page_indexes
Revises: 0017_partner_generation
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0018_page_indexes'
down_revision = '0017_partner_generation'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_transactions_owner_page', 'transactions',
                    ['token_country_code', 'token_party_id', 'last_updated', 'id'],
                    sqlite_where=sa.text('evse_uid IS NOT NULL'),
                    postgresql_where=sa.text('evse_uid IS NOT NULL'))
    with op.batch_alter_table('cdrs') as batch:
        batch.add_column(sa.Column('token_country_code', sa.String(length=2), nullable=True))
        batch.add_column(sa.Column('token_party_id', sa.String(length=3), nullable=True))
    op.execute("UPDATE cdrs SET "
               "token_country_code = (SELECT t.token_country_code FROM transactions t "
               "WHERE t.id = cdrs.transaction_id), "
               "token_party_id = (SELECT t.token_party_id FROM transactions t "
               "WHERE t.id = cdrs.transaction_id)")
    op.create_index('ix_cdrs_owner_page', 'cdrs',
                    ['token_country_code', 'token_party_id', 'last_updated', 'id'])
    # Sessions completed before are priced when listed, as they were.
    op.create_table(
        'session_objects',
        sa.Column('transaction_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id']),
        sa.PrimaryKeyConstraint('transaction_id'))


def downgrade() -> None:
    op.drop_table('session_objects')
    op.drop_index('ix_cdrs_owner_page', table_name='cdrs')
    with op.batch_alter_table('cdrs') as batch:
        batch.drop_column('token_party_id')
        batch.drop_column('token_country_code')
    op.drop_index('ix_transactions_owner_page', table_name='transactions')
