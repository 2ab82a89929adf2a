"""token_auth_fields: an expiry for the site's own cards

Revision ID: 0008_token_auth_fields
Revises: 0007_sites
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0008_token_auth_fields'
down_revision = '0007_sites'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.add_column(sa.Column('expires_at', chargerfw.csms.tables.UtcDateTime(),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tokens') as batch:
        batch.drop_column('expires_at')
