"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-21 15:28:07.193473
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('locations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('party_id', sa.String(length=3), nullable=False),
    sa.Column('publish', sa.Boolean(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('address', sa.String(length=45), nullable=False),
    sa.Column('city', sa.String(length=45), nullable=False),
    sa.Column('postal_code', sa.String(length=10), nullable=True),
    sa.Column('country', sa.String(length=3), nullable=False),
    sa.Column('latitude', sa.String(length=10), nullable=False),
    sa.Column('longitude', sa.String(length=11), nullable=False),
    sa.Column('time_zone', sa.String(length=255), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locations'))
    )
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_locations_last_updated'), ['last_updated'], unique=False)

    op.create_table('partners',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=True),
    sa.Column('party_id', sa.String(length=3), nullable=True),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('token_a_hash', sa.String(length=64), nullable=True),
    sa.Column('token_c_hash', sa.String(length=64), nullable=True),
    sa.Column('their_token', sa.String(length=64), nullable=True),
    sa.Column('their_versions_url', sa.String(length=255), nullable=True),
    sa.Column('their_version', sa.String(length=10), nullable=True),
    sa.Column('their_endpoints', sa.JSON(), nullable=True),
    sa.Column('registered', sa.Boolean(), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_partners')),
    sa.UniqueConstraint('token_a_hash', name=op.f('uq_partners_token_a_hash')),
    sa.UniqueConstraint('token_c_hash', name=op.f('uq_partners_token_c_hash'))
    )
    op.create_table('tariffs',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('party_id', sa.String(length=3), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tariffs'))
    )
    with op.batch_alter_table('tariffs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tariffs_last_updated'), ['last_updated'], unique=False)

    op.create_table('charge_points',
    sa.Column('id', sa.String(length=48), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=True),
    sa.Column('location_id', sa.String(length=36), nullable=True),
    sa.Column('auto_registered', sa.Boolean(), nullable=False),
    sa.Column('vendor', sa.String(length=20), nullable=True),
    sa.Column('model', sa.String(length=20), nullable=True),
    sa.Column('serial_number', sa.String(length=25), nullable=True),
    sa.Column('firmware_version', sa.String(length=50), nullable=True),
    sa.Column('last_boot', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('last_heartbeat', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_charge_points_location_id_locations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_points'))
    )
    op.create_table('pending_commands',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('command', sa.String(length=20), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('response_url', sa.String(length=255), nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=True),
    sa.Column('id_tag', sa.String(length=36), nullable=True),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('deadline', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('finished_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_pending_commands_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pending_commands'))
    )
    op.create_table('push_queue',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=False),
    sa.Column('module', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('url', sa.String(length=512), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('done_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_push_queue_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_push_queue'))
    )
    with op.batch_alter_table('push_queue', schema=None) as batch_op:
        batch_op.create_index('ix_push_queue_status_id', ['status', 'id'], unique=False)

    op.create_table('tokens',
    sa.Column('country_code', sa.String(length=2), nullable=False),
    sa.Column('party_id', sa.String(length=3), nullable=False),
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('contract_id', sa.String(length=36), nullable=False),
    sa.Column('valid', sa.Boolean(), nullable=False),
    sa.Column('whitelist', sa.String(length=16), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_tokens_partner_id_partners')),
    sa.PrimaryKeyConstraint('country_code', 'party_id', 'uid', 'type', name=op.f('pk_tokens'))
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index('ix_tokens_uid', ['uid'], unique=False)

    op.create_table('connector_status',
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error_code', sa.String(length=30), nullable=False),
    sa.Column('info', sa.String(length=50), nullable=True),
    sa.Column('vendor_id', sa.String(length=255), nullable=True),
    sa.Column('vendor_error_code', sa.String(length=50), nullable=True),
    sa.Column('timestamp', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('received_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'], name=op.f('fk_connector_status_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('charge_point_id', 'connector_id', name=op.f('pk_connector_status'))
    )
    op.create_table('evses',
    sa.Column('uid', sa.String(length=36), nullable=False),
    sa.Column('location_id', sa.String(length=36), nullable=False),
    sa.Column('evse_id', sa.String(length=48), nullable=True),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('ocpp_connector_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'], name=op.f('fk_evses_charge_point_id_charge_points')),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'], name=op.f('fk_evses_location_id_locations')),
    sa.PrimaryKeyConstraint('uid', name=op.f('pk_evses')),
    sa.UniqueConstraint('charge_point_id', 'ocpp_connector_id', name='uq_evses_charge_point_connector')
    )
    with op.batch_alter_table('evses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evses_location_id'), ['location_id'], unique=False)

    op.create_table('reservations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('id_tag', sa.String(length=20), nullable=False),
    sa.Column('expiry', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('partner_id', sa.Integer(), nullable=True),
    sa.Column('ocpi_reservation_id', sa.String(length=36), nullable=True),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'], name=op.f('fk_reservations_charge_point_id_charge_points')),
    sa.ForeignKeyConstraint(['partner_id'], ['partners.id'], name=op.f('fk_reservations_partner_id_partners')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reservations'))
    )
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reservations_ocpi_reservation_id'), ['ocpi_reservation_id'], unique=False)

    op.create_table('transactions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('session_id', sa.String(length=36), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('evse_uid', sa.String(length=36), nullable=True),
    sa.Column('location_id', sa.String(length=36), nullable=True),
    sa.Column('id_tag', sa.String(length=20), nullable=False),
    sa.Column('id_tag_status', sa.String(length=16), nullable=False),
    sa.Column('token_country_code', sa.String(length=2), nullable=True),
    sa.Column('token_party_id', sa.String(length=3), nullable=True),
    sa.Column('token_type', sa.String(length=16), nullable=True),
    sa.Column('contract_id', sa.String(length=36), nullable=True),
    sa.Column('auth_method', sa.String(length=16), nullable=False),
    sa.Column('authorization_reference', sa.String(length=36), nullable=True),
    sa.Column('reservation_id', sa.Integer(), nullable=True),
    sa.Column('meter_start', sa.BigInteger(), nullable=False),
    sa.Column('meter_last', sa.BigInteger(), nullable=False),
    sa.Column('meter_stop', sa.BigInteger(), nullable=True),
    sa.Column('start_time', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('stop_time', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('stop_reason', sa.String(length=20), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('tariff_id', sa.String(length=36), nullable=True),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'], name=op.f('fk_transactions_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_transactions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_transactions_idempotency_key')),
    sa.UniqueConstraint('session_id', name=op.f('uq_transactions_session_id'))
    )
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.create_index('ix_transactions_last_updated_id', ['last_updated', 'id'], unique=False)

    op.create_table('cdrs',
    sa.Column('id', sa.String(length=39), nullable=False),
    sa.Column('transaction_id', sa.Integer(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_cdrs_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cdrs')),
    sa.UniqueConstraint('transaction_id', name=op.f('uq_cdrs_transaction_id'))
    )
    with op.batch_alter_table('cdrs', schema=None) as batch_op:
        batch_op.create_index('ix_cdrs_last_updated_id', ['last_updated', 'id'], unique=False)

    op.create_table('connectors',
    sa.Column('evse_uid', sa.String(length=36), nullable=False),
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('standard', sa.String(length=32), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('power_type', sa.String(length=16), nullable=False),
    sa.Column('max_voltage', sa.Integer(), nullable=False),
    sa.Column('max_amperage', sa.Integer(), nullable=False),
    sa.Column('max_electric_power', sa.Integer(), nullable=True),
    sa.Column('tariff_id', sa.String(length=36), nullable=True),
    sa.Column('last_updated', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['evse_uid'], ['evses.uid'], name=op.f('fk_connectors_evse_uid_evses')),
    sa.PrimaryKeyConstraint('evse_uid', 'id', name=op.f('pk_connectors'))
    )
    op.create_table('meter_values',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.Integer(), nullable=True),
    sa.Column('timestamp', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('measurand', sa.String(length=50), nullable=False),
    sa.Column('phase', sa.String(length=8), nullable=False),
    sa.Column('context', sa.String(length=20), nullable=False),
    sa.Column('unit', sa.String(length=10), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['transaction_id'], ['transactions.id'], name=op.f('fk_meter_values_transaction_id_transactions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_values')),
    sa.UniqueConstraint('charge_point_id', 'connector_id', 'timestamp', 'measurand', 'phase', 'context', name='uq_meter_values_sample')
    )
    with op.batch_alter_table('meter_values', schema=None) as batch_op:
        batch_op.create_index('ix_meter_values_transaction', ['transaction_id', 'timestamp'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('meter_values', schema=None) as batch_op:
        batch_op.drop_index('ix_meter_values_transaction')

    op.drop_table('meter_values')
    op.drop_table('connectors')
    with op.batch_alter_table('cdrs', schema=None) as batch_op:
        batch_op.drop_index('ix_cdrs_last_updated_id')

    op.drop_table('cdrs')
    with op.batch_alter_table('transactions', schema=None) as batch_op:
        batch_op.drop_index('ix_transactions_last_updated_id')

    op.drop_table('transactions')
    with op.batch_alter_table('reservations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_reservations_ocpi_reservation_id'))

    op.drop_table('reservations')
    with op.batch_alter_table('evses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evses_location_id'))

    op.drop_table('evses')
    op.drop_table('connector_status')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_tokens_uid')

    op.drop_table('tokens')
    with op.batch_alter_table('push_queue', schema=None) as batch_op:
        batch_op.drop_index('ix_push_queue_status_id')

    op.drop_table('push_queue')
    op.drop_table('pending_commands')
    op.drop_table('charge_points')
    with op.batch_alter_table('tariffs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tariffs_last_updated'))

    op.drop_table('tariffs')
    op.drop_table('partners')
    with op.batch_alter_table('locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_locations_last_updated'))

    op.drop_table('locations')
