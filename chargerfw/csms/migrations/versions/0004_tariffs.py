"""tariffs: a session keeps the tariff it started under

Revision ID: 0004_tariffs
Revises: 0002_partner_parties
Create Date: 2026-12-02 22:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004_tariffs'
down_revision = '0002_partner_parties'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tariff', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_column('tariff')
