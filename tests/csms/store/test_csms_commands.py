"""Which eMSP command vouches for an idTag at a charger, and until when; who may unlock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from csms_doubles import add_test_charger

from chargerfw.csms.store import AuthDecision, Party, StartRequest, Store
from chargerfw.csms.store.commands import START_WINDOW, UNLOCK_WINDOW

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _token(uid: str) -> dict[str, str]:
    return {"country_code": "DE", "party_id": "AAA", "uid": uid, "type": "RFID",
            "contract_id": f"DE-AAA-{uid}"}


def test_a_command_vouches_at_its_charger_while_it_holds(store: Store) -> None:
    add_test_charger(store, "CP1")
    add_test_charger(store, "CP2", location_id="LOC2")
    partner, _ = store.add_partner("A", [Party("DE", "AAA")])
    start = store.create_command(partner, "START_SESSION", {"token": _token("APP1")},
                                 "http://e/r", "CP1", "APP1", 30)
    created = store.get_command(start)["created_at"]
    vouched = store.command_vouching_for("CP1", "APP1", created)
    assert vouched is not None and vouched[1] == created + timedelta(seconds=30)
    assert store.command_vouching_for("CP2", "APP1", created) is None  # its charger only
    assert store.command_vouching_for("CP1", "APP1", created + timedelta(seconds=30)) is None
    store.finish_command(start, "ACCEPTED")
    assert store.command_vouching_for("CP1", "APP1", created)[1] == created + START_WINDOW
    assert store.command_vouching_for("CP1", "APP1", created + START_WINDOW) is None

    expiry = created + timedelta(minutes=20)
    rid = store.create_reservation("CP1", 1, "RES1", expiry, partner, "R-1")
    reserve = store.create_command(partner, "RESERVE_NOW", {
        "response_url": "http://e/r", "token": _token("RES1") | {
            "issuer": "A", "valid": True, "whitelist": "ALWAYS",
            "last_updated": "2026-01-01T00:00:00Z"},
        "expiry_date": expiry.isoformat(), "reservation_id": "R-1", "location_id": "LOC1"},
        "http://e/r", "CP1", "RES1", 30)
    # Pending: until the command's deadline (the charger may ask before it accepts).
    reserve_created = store.get_command(reserve)["created_at"]
    assert store.command_vouching_for("CP1", "RES1", reserve_created)[1] == (
        reserve_created + timedelta(seconds=30))
    store.set_reservation_status(rid, "ACCEPTED")
    store.finish_command(reserve, "ACCEPTED")
    assert store.command_vouching_for("CP1", "RES1", created)[1] == expiry
    assert store.command_vouching_for("CP1", "RES1", expiry) is None
    store.set_reservation_status(rid, "CANCELLED")
    assert store.command_vouching_for("CP1", "RES1", created) is None


def test_only_the_session_owner_may_unlock(store: Store) -> None:
    add_test_charger(store, "CP1", connectors=2)
    a, _ = store.add_partner("A", [Party("DE", "AAA")])
    b, _ = store.add_partner("B", [Party("DE", "BBB")])
    assert not store.may_unlock(a, "CP1", 1)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG", 0, T0),
                                    AuthDecision("Accepted", "WHITELIST", "DE", "AAA"))
    assert store.may_unlock(a, "CP1", 1) and not store.may_unlock(b, "CP1", 1)
    assert not store.may_unlock(a, "CP1", 2)
    stop = T0 + timedelta(minutes=5)
    store.stop_transaction("CP1", tx["id"], 10, stop, "Local")
    assert store.may_unlock(a, "CP1", 1, stop + UNLOCK_WINDOW - timedelta(seconds=1))
    assert not store.may_unlock(a, "CP1", 1, stop + UNLOCK_WINDOW + timedelta(seconds=1))
