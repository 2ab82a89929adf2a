"""partner_generation: a value that changes with every change to partners, their parties or
a hub's parties (set by triggers), so the receivers of a push can be cached until then

Revision ID: 0017_partner_generation
Revises: 0016_transaction_remark
Create Date: 2026-12-03 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017_partner_generation'
down_revision = '0016_transaction_remark'
branch_labels = None
depends_on = None

# Who receives a push depends on these (see chargerfw.csms.store.push_queue.receivers).
_WATCHED = ('partners', 'partner_parties', 'hub_parties')


def upgrade() -> None:
    op.create_table('partner_generation',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('generation', sa.String(length=32), nullable=False),
                    sa.PrimaryKeyConstraint('id'))
    op.execute("INSERT INTO partner_generation (id, generation) VALUES (1, 'initial')")
    # A random new value, never a counter: a counter rolled back with its transaction would
    # come back later for different contents.
    if op.get_bind().dialect.name == 'sqlite':
        for table in _WATCHED:
            for event in ('INSERT', 'UPDATE', 'DELETE'):
                op.execute(
                    f"CREATE TRIGGER {table}_{event.lower()}_generation AFTER {event} ON "
                    f"{table} BEGIN UPDATE partner_generation SET generation = "
                    "lower(hex(randomblob(16))) WHERE id = 1; END")
    else:
        op.execute(
            "CREATE FUNCTION new_partner_generation() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN UPDATE partner_generation SET generation = "
            "md5(random()::text || clock_timestamp()::text) WHERE id = 1; RETURN NULL; "
            "END $$")
        for table in _WATCHED:
            op.execute(f"CREATE TRIGGER {table}_generation AFTER INSERT OR UPDATE OR DELETE "
                       f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                       "EXECUTE FUNCTION new_partner_generation()")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        for table in _WATCHED:
            for event in ('insert', 'update', 'delete'):
                op.execute(f"DROP TRIGGER {table}_{event}_generation")
    else:
        for table in _WATCHED:
            op.execute(f"DROP TRIGGER {table}_generation ON {table}")
        op.execute("DROP FUNCTION new_partner_generation()")
    op.drop_table('partner_generation')
