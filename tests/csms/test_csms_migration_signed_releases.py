"""Migration 0013_signed_releases: a published release keeps its signing certificate and
signature; releases published before stay unsigned, and the columns go on downgrade."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from chargerfw.csms.db import MIGRATIONS, create_db_engine, current_revision, upgrade_database
from chargerfw.csms.store import CpoIdentity, Store


def _columns(engine: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("firmware_releases")}


def test_the_signature_columns_come_and_go(empty_db: str) -> None:
    engine = create_db_engine(empty_db)
    try:
        config = Config()
        config.set_main_option("script_location", MIGRATIONS)

        def migrate(step: str, revision: str) -> None:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                getattr(command, step)(config, revision)

        migrate("upgrade", "0012_admin_api")
        store = Store(engine, CpoIdentity())
        store.add_release("1.0", "chargerfw-1.0-release.tar", "firmware/a.tar", "0" * 64, 1)
        assert not {"signing_certificate", "signature"} & _columns(engine)
        migrate("upgrade", "0013_signed_releases")
        assert current_revision(engine) == "0013_signed_releases"
        store.add_release("1.1", "chargerfw-1.1-release.tar", "firmware/b.tar", "1" * 64, 1,
                          signing_certificate="PEM", signature="c2ln")
        old, new = store.get_release("1.0"), store.get_release("1.1")
        assert old is not None and (old["signing_certificate"], old["signature"]) == (None, None)
        assert new is not None and (new["signing_certificate"], new["signature"]) == (
            "PEM", "c2ln")

        migrate("downgrade", "0012_admin_api")
        assert not {"signing_certificate", "signature"} & _columns(engine)
        with engine.connect() as c:  # the releases stay, unsigned
            assert c.execute(sa.text("SELECT count(*) FROM firmware_releases")).scalar() == 2
        upgrade_database(engine)
        assert {"signing_certificate", "signature"} <= _columns(engine)
    finally:
        engine.dispose()
