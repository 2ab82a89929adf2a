"""Partners in the store: credentials tokens are kept as digests and TOKEN_A is spent on
registration."""

from __future__ import annotations

import sqlalchemy as sa

from chargerfw.csms.store import Party, Store


def test_partner_tokens_are_stored_as_digests(store: Store) -> None:
    partner_id, token_a = store.add_partner("eMSP", [Party("DE", "EMS")])
    found = store.partner_by_token(token_a)
    assert found is not None and found[1] == "A"
    with store.engine.connect() as conn:
        dump = " ".join(str(v) for row in conn.execute(sa.text("SELECT * FROM partners"))
                        for v in row)
    assert token_a not in dump
    token_c = store.register_partner(partner_id, "b", "http://x/versions", "2.2.1", [],
                                     [Party("DE", "EMS")])
    assert store.partner_by_token(token_a) is None  # TOKEN_A is spent
    assert store.partner_by_token(token_c)[1] == "C"
