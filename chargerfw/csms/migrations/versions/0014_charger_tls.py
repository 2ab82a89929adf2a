"""charger_tls: a charger that connected with a client certificate (security profile 3) must
always present one; Basic auth alone is refused for it

Revision ID: 0014_charger_tls
Revises: 0013_signed_releases
Create Date: 2026-12-20 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014_charger_tls'
down_revision = '0013_signed_releases'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('charge_points') as batch:
        batch.add_column(sa.Column('client_certificate_required', sa.Boolean(),
                                   server_default='0', nullable=False))


def downgrade() -> None:
    # In place (SQLite 3.35+ drops a column itself): copying charge_points is what its
    # foreign keys would not allow.
    op.drop_column('charge_points', 'client_certificate_required')
