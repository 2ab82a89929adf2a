"""transactions.cdr_due: a completed transaction whose final Session and CDR a worker still
has to build (off the StopTransaction's answer)

Revision ID: 0020_cdr_due
Revises: 0019_backend_workers
Create Date: 2026-12-04 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0020_cdr_due'
down_revision = '0019_backend_workers'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every transaction completed before this revision got its CDR in its stop: none is due.
    with op.batch_alter_table('transactions') as batch:
        batch.add_column(sa.Column('cdr_due', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    op.create_index('ix_transactions_cdr_due', 'transactions', ['id'],
                    sqlite_where=sa.text('cdr_due IS 1'),
                    postgresql_where=sa.text('cdr_due IS true'))


def downgrade() -> None:
    # The older code builds a CDR only in its stop, which has passed: a due one would be
    # lost.
    due = op.get_bind().execute(sa.text(
        "SELECT count(*) FROM transactions WHERE cdr_due")).scalar_one()
    if due:
        raise RuntimeError(f"{due} transactions still wait for their CDR: run the backend "
                           "until it has built them, then downgrade")
    op.drop_index('ix_transactions_cdr_due', table_name='transactions')
    with op.batch_alter_table('transactions') as batch:
        batch.drop_column('cdr_due')
