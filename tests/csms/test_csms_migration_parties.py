"""Migration 0002_partner_parties on a database with partners registered before it: each keeps
the party it declared, unless two declared the same one (then the operator decides)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from chargerfw.csms.db import MIGRATIONS, create_db_engine, upgrade_database
from chargerfw.csms.store import CpoIdentity, Party, Store
from chargerfw.csms.tables import partners


def test_registered_partners_keep_an_undisputed_party(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        now = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as c:
            for name, cc, pid, registered in (("A", "DE", "AAA", True), ("B", "DE", "BBB", True),
                                              ("B2", "DE", "BBB", True),
                                              ("C", "DE", "CCC", False)):
                c.execute(partners.insert().values(
                    name=name, country_code=cc, party_id=pid, role="EMSP",
                    registered=registered, last_updated=now))
        upgrade_database(engine)
        store = Store(engine, CpoIdentity())
        held = {p["name"]: store.partner_parties(p["id"]) for p in store.list_partners()}
        assert held == {"A": [Party("DE", "AAA")], "B": [], "B2": [], "C": []}
        with engine.connect() as c:
            assert c.execute(sa.text("SELECT COUNT(*) FROM token_routes")).scalar() == 0
    finally:
        engine.dispose()
