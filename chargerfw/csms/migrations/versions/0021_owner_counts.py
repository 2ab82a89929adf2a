"""owner_counts: how many sessions and CDRs each token party's listing holds, kept by
triggers in the transaction that changes the rows, so X-Total-Count is exact without
counting the rows

Revision ID: 0021_owner_counts
Revises: 0020_cdr_due
Create Date: 2026-12-03 19:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0021_owner_counts'
down_revision = '0020_cdr_due'
branch_labels = None
depends_on = None

# (listing, table, the SQL condition on a row of it -- ``{row}`` is NEW or OLD -- that puts
# the row in the listing, the columns that condition reads). Sessions are the transactions
# on an EVSE; every CDR is listed.
COUNTED = (("sessions", "transactions", "{row}.evse_uid IS NOT NULL", ("evse_uid",)),
           ("cdrs", "cdrs", "TRUE", ()))
OWNER_COLUMNS = ("token_country_code", "token_party_id")


def _key(row: str) -> str:
    return ", ".join(f"coalesce({row}.{column}, '')" for column in OWNER_COLUMNS)


def _insert(listing: str, row: str, delta: int, where: str = "TRUE") -> str:
    return (f"INSERT INTO owner_counts (listing, country_code, party_id, delta) "
            f"SELECT '{listing}', {_key(row)}, {delta} WHERE {where}")


def _moved(counted: str, null_safe_differs: str) -> str:
    """SQL: an UPDATE moved the row into, out of, or between listings' owners."""
    in_old, in_new = counted.format(row="OLD"), counted.format(row="NEW")
    return " OR ".join([f"({in_old}) {null_safe_differs} ({in_new})",
                        *(f"OLD.{c} {null_safe_differs} NEW.{c}" for c in OWNER_COLUMNS)])


def _sqlite_triggers(listing: str, table: str, counted: str, reads: tuple[str, ...]
                     ) -> list[str]:
    in_old, in_new = counted.format(row="OLD"), counted.format(row="NEW")
    return [
        f"CREATE TRIGGER tr_{table}_owner_counts_insert AFTER INSERT ON {table} "
        f"WHEN {in_new} BEGIN {_insert(listing, 'NEW', 1)}; END",
        f"CREATE TRIGGER tr_{table}_owner_counts_delete AFTER DELETE ON {table} "
        f"WHEN {in_old} BEGIN {_insert(listing, 'OLD', -1)}; END",
        f"CREATE TRIGGER tr_{table}_owner_counts_update AFTER UPDATE OF "
        f"{', '.join([*OWNER_COLUMNS, *reads])} ON {table} WHEN {_moved(counted, 'IS NOT')} BEGIN "
        f"{_insert(listing, 'OLD', -1, in_old)}; {_insert(listing, 'NEW', 1, in_new)}; END"]


def _postgresql_triggers(listing: str, table: str, counted: str, reads: tuple[str, ...]
                         ) -> list[str]:
    in_old, in_new = counted.format(row="OLD"), counted.format(row="NEW")
    function = f"owner_counts_{table}"
    watched = ", ".join([*OWNER_COLUMNS, *reads])
    return [
        f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF TG_OP <> 'INSERT' THEN IF {in_old} THEN {_insert(listing, 'OLD', -1)}; "
        f"END IF; END IF; "
        f"IF TG_OP <> 'DELETE' THEN IF {in_new} THEN {_insert(listing, 'NEW', 1)}; "
        f"END IF; END IF; RETURN NULL; END $$",
        f"CREATE TRIGGER tr_{table}_owner_counts AFTER INSERT OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        f"CREATE TRIGGER tr_{table}_owner_counts_update AFTER UPDATE OF {watched} "
        f"ON {table} FOR EACH ROW WHEN ({_moved(counted, 'IS DISTINCT FROM')}) "
        f"EXECUTE FUNCTION {function}()"]


def upgrade() -> None:
    op.create_table(
        'owner_counts',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('listing', sa.String(length=16), nullable=False),
        sa.Column('country_code', sa.String(length=2), nullable=False),
        sa.Column('party_id', sa.String(length=3), nullable=False),
        sa.Column('delta', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_owner_counts')))
    op.create_index('ix_owner_counts_owner', 'owner_counts',
                    ['listing', 'country_code', 'party_id', 'delta'])
    postgresql = op.get_bind().dialect.name == "postgresql"
    for listing, table, counted, reads in COUNTED:
        op.execute(f"INSERT INTO owner_counts (listing, country_code, party_id, delta) "
                   f"SELECT '{listing}', {_key(table)}, count(*) FROM {table} "
                   f"WHERE {counted.format(row=table)} GROUP BY {_key(table)}")
        build = _postgresql_triggers if postgresql else _sqlite_triggers
        for statement in build(listing, table, counted, reads):
            op.execute(statement)


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for _listing, table, _counted, _reads in COUNTED:
        if postgresql:
            op.execute(f"DROP TRIGGER tr_{table}_owner_counts_update ON {table}")
            op.execute(f"DROP TRIGGER tr_{table}_owner_counts ON {table}")
            op.execute(f"DROP FUNCTION owner_counts_{table}()")
        else:
            for event in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER tr_{table}_owner_counts_{event}")
    op.drop_index('ix_owner_counts_owner', table_name='owner_counts')
    op.drop_table('owner_counts')
