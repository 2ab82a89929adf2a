"""operator_commands: one queue for every command an operator sends a charger through the
running server; local-list push requests move into it

Revision ID: 0010_operator_commands
Revises: 0009_local_lists
Create Date: 2026-12-11 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import chargerfw.csms.tables

revision = '0010_operator_commands'
down_revision = '0009_local_lists'
branch_labels = None
depends_on = None

LOCAL_LIST_PUSH = 'local_list_push'


def _requests_table() -> sa.TableClause:
    return sa.table('local_list_requests',
                    sa.column('id', sa.Integer()), sa.column('charge_point_id', sa.String()),
                    sa.column('full', sa.Boolean()),
                    sa.column('requested_at', chargerfw.csms.tables.UtcDateTime()),
                    sa.column('claimed_at', chargerfw.csms.tables.UtcDateTime()),
                    sa.column('finished_at', chargerfw.csms.tables.UtcDateTime()),
                    sa.column('outcome', sa.JSON()))


def _commands_table() -> sa.TableClause:
    return sa.table('operator_commands',
                    sa.column('id', sa.Integer()), sa.column('charge_point_id', sa.String()),
                    sa.column('command', sa.String()), sa.column('params', sa.JSON()),
                    sa.column('requested_at', chargerfw.csms.tables.UtcDateTime()),
                    sa.column('claimed_at', chargerfw.csms.tables.UtcDateTime()),
                    sa.column('finished_at', chargerfw.csms.tables.UtcDateTime()),
                    sa.column('outcome', sa.JSON()))


def upgrade() -> None:
    op.create_table('operator_commands',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('command', sa.String(length=40), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('requested_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('claimed_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('finished_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_operator_commands_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_operator_commands'))
    )
    requests, commands = _requests_table(), _commands_table()
    conn = op.get_bind()
    rows = conn.execute(sa.select(requests).order_by(requests.c.id)).mappings().all()
    if rows:
        conn.execute(commands.insert(), [
            dict(charge_point_id=row['charge_point_id'], command=LOCAL_LIST_PUSH,
                 params={'full': bool(row['full'])}, requested_at=row['requested_at'],
                 claimed_at=row['claimed_at'], finished_at=row['finished_at'],
                 outcome=row['outcome']) for row in rows])
    op.drop_table('local_list_requests')


def downgrade() -> None:
    op.create_table('local_list_requests',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('charge_point_id', sa.String(length=48), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('requested_at', chargerfw.csms.tables.UtcDateTime(), nullable=False),
    sa.Column('claimed_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('finished_at', chargerfw.csms.tables.UtcDateTime(), nullable=True),
    sa.Column('outcome', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['charge_point_id'], ['charge_points.id'],
                            name=op.f('fk_local_list_requests_charge_point_id_charge_points')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_local_list_requests'))
    )
    requests, commands = _requests_table(), _commands_table()
    conn = op.get_bind()
    rows = conn.execute(sa.select(commands).where(commands.c.command == LOCAL_LIST_PUSH)
                        .order_by(commands.c.id)).mappings().all()
    if rows:
        conn.execute(requests.insert(), [
            dict(charge_point_id=row['charge_point_id'], full=bool(row['params'].get('full')),
                 requested_at=row['requested_at'], claimed_at=row['claimed_at'],
                 finished_at=row['finished_at'], outcome=row['outcome']) for row in rows])
    op.drop_table('operator_commands')
