"""locations and sessions: what an eMSP app shows of a location, what a charger supports, its
connection (offline chargers go UNKNOWN), and what each partner holds of each session

Revision ID: 0005_locations_sessions
Revises: 0004_tariffs
Create Date: 2026-12-02 21:50:00
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0005_locations_sessions'
down_revision = '0004_tariffs'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('opening_times', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('charging_when_closed', sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column('operator', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('facilities', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('parking_type', sa.String(length=32), nullable=True))
    # Constant server defaults: SQLite then adds the columns in place instead of copying the
    # table, which its foreign keys (evses, transactions) would not allow.
    with op.batch_alter_table('charge_points', schema=None) as batch_op:
        batch_op.add_column(sa.Column('feature_profiles', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('rfid_reader', sa.Boolean(), server_default="1",
                                      nullable=False))
        batch_op.add_column(sa.Column('connected', sa.Boolean(), server_default="0",
                                      nullable=False))
        batch_op.add_column(sa.Column('last_seen', chargerfw.csms.tables.UtcDateTime(),
                                      nullable=True))
        batch_op.add_column(sa.Column('offline', sa.Boolean(), server_default="0",
                                      nullable=False))
    op.create_table('session_pushes',
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.Integer(), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('period_digests', sa.JSON(), nullable=False),
    sa.Column('base_push_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
              nullable=False),
    sa.Column('updated_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'],
                            name=op.f('fk_session_pushes_partner_id_partners'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'],
                            name=op.f('fk_session_pushes_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('partner_id', 'transaction_id', name=op.f('pk_session_pushes'))
    )
    _name_unnamed_evses()


def _name_unnamed_evses() -> None:
    """Give every EVSE without an evse_id one in eMI3 form under its location's party
    (``CC*PPP*E<uid>``, the default format), so every EVSE partners see carries one."""
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT evses.uid, locations.country_code, locations.party_id FROM evses "
        "JOIN locations ON locations.id = evses.location_id WHERE evses.evse_id IS NULL"))
    for uid, country_code, party_id in rows.all():
        outlet = re.sub(r"[^A-Z0-9]+", "*", uid.upper()).strip("*")[:30] or "1"
        conn.execute(sa.text("UPDATE evses SET evse_id = :evse_id WHERE uid = :uid"),
                     {"evse_id": f"{country_code.upper()}*{party_id.upper()}*E{outlet}",
                      "uid": uid})


def downgrade() -> None:
    op.drop_table('session_pushes')
    with op.batch_alter_table('charge_points', schema=None) as batch_op:
        batch_op.drop_column('offline')
        batch_op.drop_column('last_seen')
        batch_op.drop_column('connected')
        batch_op.drop_column('rfid_reader')
        batch_op.drop_column('feature_profiles')
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.drop_column('parking_type')
        batch_op.drop_column('facilities')
        batch_op.drop_column('operator')
        batch_op.drop_column('charging_when_closed')
        batch_op.drop_column('opening_times')
