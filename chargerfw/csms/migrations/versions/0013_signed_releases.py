"""signed releases: a published release's signing certificate and signature for
SignedUpdateFirmware

Revision ID: 0013_signed_releases
Revises: 0012_admin_api
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0013_signed_releases'
down_revision = '0012_admin_api'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('firmware_releases', schema=None) as batch_op:
        batch_op.add_column(sa.Column('signing_certificate', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('signature', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('firmware_releases', schema=None) as batch_op:
        batch_op.drop_column('signature')
        batch_op.drop_column('signing_certificate')
