"""charger_files: chargers' firmware/diagnostics/log statuses, published firmware releases,
one-time file URLs and the files chargers uploaded

Revision ID: 0011_charger_files
Revises: 0010_operator_commands
Create Date: 2026-12-12 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0011_charger_files'
down_revision = '0010_operator_commands'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('charger_file_statuses',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.Integer(), nullable=True),
    sa.Column('reported_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_charger_file_statuses_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charger_file_statuses'))
    )
    op.create_index('ix_charger_file_statuses_cp_kind', 'charger_file_statuses',
                    ['charge_point_id', 'kind', 'id'], unique=False)
    op.create_table('firmware_releases',
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('published_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_firmware_releases'))
    )
    op.create_table('file_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('release_version', sa.String(length=50), nullable=True),
    sa.Column('created_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('expires_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('used_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_file_tokens_charge_point_id_charge_points')),
    sa.ForeignKeyConstraint(['release_version'], ['firmware_releases.version'],
                            name=op.f('fk_file_tokens_release_version_firmware_releases')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_file_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_file_tokens_token_hash'))
    )
    op.create_table('received_files',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=False),
    sa.Column('file_name', sa.String(length=255), nullable=True),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('received_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_received_files_charge_point_id_charge_points')),
    sa.ForeignKeyConstraint(['token_id'], ['file_tokens.id'],
                            name=op.f('fk_received_files_token_id_file_tokens')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_received_files'))
    )
    op.create_index(op.f('ix_received_files_charge_point_id'), 'received_files',
                    ['charge_point_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_received_files_charge_point_id'), table_name='received_files')
    op.drop_table('received_files')
    op.drop_table('file_tokens')
    op.drop_table('firmware_releases')
    op.drop_index('ix_charger_file_statuses_cp_kind', table_name='charger_file_statuses')
    op.drop_table('charger_file_statuses')
