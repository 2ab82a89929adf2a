"""Partners in the store: credentials tokens are kept as digests and TOKEN_A is spent on
registration; a partner holds the parties the operator gave it and registers as those only."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from chargerfw.csms.store import Party, PartyNotAllowed, Store, StoreError


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


def test_a_partner_is_fixed_to_the_parties_it_was_given(store: Store) -> None:
    a, _ = store.add_partner("A", [Party("DE", "AAA"), Party("de", "aaa", "nsp")])
    b, _ = store.add_partner("B", [Party("FR", "BBB")])
    assert store.partner_parties(a) == [Party("DE", "AAA", "EMSP"), Party("DE", "AAA", "NSP")]
    for claimed in ([Party("NL", "CFW")], [Party("DE", "AAA", "HUB")]):
        with pytest.raises(StoreError):  # ours; another partner's (in any role)
            store.add_partner("X", claimed)
    assert [p["name"] for p in store.list_partners()] == ["A", "B"]
    with pytest.raises(PartyNotAllowed, match="FR/BBB/EMSP not given"):
        store.register_partner(a, "t", "http://x/versions", "2.2.1", [],
                               [Party("DE", "AAA"), Party("FR", "BBB")])
    with pytest.raises(PartyNotAllowed):
        store.register_partner(a, "t", "http://x/versions", "2.2.1", [], [])
    assert store.get_partner(a)["registered"] is False
    assert store.holds_party(a, "de", "aaa") and not store.holds_party(a, "FR", "BBB")
    assert not store.holds_party(b, None, None)
    store.take_party(b, Party("FR", "BBB"))
    assert store.partner_of_party("FR", "BBB") is None
    store.give_party(b, Party("FR", "BBB", "HUB"))
    assert store.partner_of_party("fr", "bbb")["id"] == b
    with pytest.raises(StoreError):
        Party("DEU", "AAA")


def test_the_sites_own_card_is_never_shadowed(store: Store) -> None:
    from chargerfw.csms.ocpi import models as m

    store.add_local_token("04CAFE", whitelist="ALWAYS")
    for party_id in ("AAA", "BBB"):
        store.put_token(m.Token.model_validate({
            "country_code": "DE", "party_id": party_id, "uid": "04CAFE", "type": "RFID",
            "contract_id": f"DE-{party_id}-1", "issuer": party_id, "valid": False,
            "whitelist": "ALWAYS", "last_updated": "2030-01-01T00:00:00Z"}), None)
    assert [t.data["party_id"] for t in store.tokens_by_uid("04CAFE")][0] == "CFW"
    store.put_token(m.Token.model_validate({
        "country_code": "DE", "party_id": "AAA", "uid": "04BEEF", "type": "RFID",
        "contract_id": "DE-AAA-2", "issuer": "AAA", "valid": True, "whitelist": "ALWAYS",
        "last_updated": "2026-01-01T00:00:00Z"}), None)
    store.put_token(m.Token.model_validate({
        "country_code": "DE", "party_id": "BBB", "uid": "04BEEF", "type": "RFID",
        "contract_id": "DE-BBB-2", "issuer": "BBB", "valid": True, "whitelist": "ALWAYS",
        "last_updated": "2030-01-01T00:00:00Z"}), None)
    assert store.tokens_by_uid("04BEEF")[0].data["party_id"] == "BBB"  # the newest
    store.set_token_route("04BE", "DE", "AAA")
    assert store.tokens_by_uid("04BEEF")[0].data["party_id"] == "AAA"  # the routed issuer's
