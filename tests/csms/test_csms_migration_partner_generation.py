"""Migration 0017_partner_generation: the row and its triggers come, renew the generation on
every change to partners and parties, and go again on downgrade."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from csms_doubles import add_registered_partner

from chargerfw.csms.db import MIGRATIONS, create_db_engine, upgrade_database
from chargerfw.csms.store import CpoIdentity, Party, Store


def test_partner_generation_follows_partners_and_parties(db: str) -> None:
    engine = create_db_engine(db)
    try:
        upgrade_database(engine)
        store = Store(engine, CpoIdentity())

        def generation() -> str:
            with engine.connect() as c:
                return str(c.execute(sa.text(
                    "SELECT generation FROM partner_generation WHERE id = 1")).scalar_one())

        seen = [generation()]
        partner_id = add_registered_partner(store)
        seen.append(generation())
        store.take_party(partner_id, Party("DE", "EMS"))
        seen.append(generation())
        with engine.begin() as c:
            c.execute(sa.text("INSERT INTO hub_parties (hub_id, country_code, party_id, role, "
                              "status, last_updated) VALUES (:hub, 'DE', 'XYZ', 'EMSP', "
                              "'CONNECTED', CURRENT_TIMESTAMP)"), {"hub": partner_id})
        seen.append(generation())
        assert len(set(seen)) == len(seen)

        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0016_transaction_remark")
        assert "partner_generation" not in sa.inspect(engine).get_table_names()
        with engine.begin() as c:  # no trigger left behind to fail on the missing table
            c.execute(sa.text("UPDATE partners SET name = 'renamed'"))
        upgrade_database(engine)
        assert generation() == "initial"
    finally:
        engine.dispose()
