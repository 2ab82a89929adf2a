"""Alembic environment for the CSMS schema; driven programmatically by chargerfw.csms.db."""

from __future__ import annotations

from alembic import context

from chargerfw.csms.tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run CSMS migrations through chargerfw.csms.db.upgrade_database()")

# render_as_batch lets later migrations alter tables on SQLite too.
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
