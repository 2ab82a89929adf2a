"""transactions: the backend's remark when it closed one (orphans, refused starts) and whether
it was open when its charger booted

Revision ID: 0016_transaction_remark
Revises: 0015_fleet_certificates
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0016_transaction_remark'
down_revision = '0015_fleet_certificates'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('transactions') as batch:
        batch.add_column(sa.Column('remark', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('open_at_boot', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.add_column(sa.Column('available_after_boot_at',
                                   chargerfw.csms.tables.UtcDateTime(), nullable=True))
    # Starts the backend refused were left open: they are closed where they began.
    op.execute("UPDATE transactions SET stop_time = start_time, meter_stop = meter_start, "
               "stop_reason = 'DeAuthorized', remark = 'refused at start' "
               "WHERE status = 'INVALID' AND stop_time IS NULL")


def downgrade() -> None:
    with op.batch_alter_table('transactions') as batch:
        batch.drop_column('available_after_boot_at')
        batch.drop_column('open_at_boot')
        batch.drop_column('remark')
