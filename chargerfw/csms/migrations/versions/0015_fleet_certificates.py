"""the fleet CA: each certificate it signed for a charger and the charger's answer; the
type of security events among charger events; each charger's latest security profile and
its count of connections

Revision ID: 0015_fleet_certificates
Revises: 0014_charger_tls
Create Date: 2026-12-03 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0015_fleet_certificates'
down_revision = '0014_charger_tls'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('fleet_certificates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('serial', sa.String(length=40), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('subject', sa.String(length=500), nullable=False),
    sa.Column('not_before', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('not_after', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('issued_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('answered_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('certificate', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_fleet_certificates_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fleet_certificates')),
    sa.UniqueConstraint('serial', name=op.f('uq_fleet_certificates_serial'))
    )
    op.create_index(op.f('ix_fleet_certificates_charge_point_id'), 'fleet_certificates',
                    ['charge_point_id'], unique=False)
    with op.batch_alter_table('charge_point_events') as batch:
        batch.add_column(sa.Column('event_type', sa.String(length=50), nullable=True))
        batch.create_index(batch.f('ix_charge_point_events_event_type'), ['event_type'],
                           unique=False)
    with op.batch_alter_table('charge_points') as batch:
        batch.add_column(sa.Column('security_profile', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('connection_count', sa.Integer(), server_default='0',
                                   nullable=False))


def downgrade() -> None:
    # In place (SQLite 3.35+ drops a column itself): copying charge_points is what its
    # foreign keys would not allow.
    op.drop_column('charge_points', 'connection_count')
    op.drop_column('charge_points', 'security_profile')
    with op.batch_alter_table('charge_point_events') as batch:
        batch.drop_index(batch.f('ix_charge_point_events_event_type'))
        batch.drop_column('event_type')
    op.drop_index(op.f('ix_fleet_certificates_charge_point_id'),
                  table_name='fleet_certificates')
    op.drop_table('fleet_certificates')
