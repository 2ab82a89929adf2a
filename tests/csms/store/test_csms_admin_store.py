"""The admin API's tokens and the chargers' events in the store."""

from __future__ import annotations

import pytest
from csms_doubles import add_test_charger

from chargerfw.csms.store import AlreadyExists, NotFound, Store, StoreError, token_digest
from chargerfw.csms.tables import admin_tokens


def test_a_token_is_kept_as_a_digest_and_found_by_its_value(store: Store) -> None:
    name, token = store.create_admin_token("ops")
    assert name == "ops" and len(token) >= 40
    with store.engine.connect() as c:
        [row] = c.execute(admin_tokens.select()).mappings().all()
    assert token not in row.values() and row["token_hash"] == token_digest(token)
    assert store.admin_token_name(token) == "ops"
    assert store.admin_token_name(token + "x") is None
    assert store.admin_token_name("") is None


def test_unnamed_tokens_are_numbered_and_names_are_unique(store: Store) -> None:
    first, _ = store.create_admin_token()
    second, token = store.create_admin_token()
    assert (first, second) == ("token-1", "token-2")
    assert store.admin_token_name(token) == "token-2"
    with pytest.raises(AlreadyExists, match="'token-1' exists already"):
        store.create_admin_token("token-1")
    with pytest.raises(StoreError, match="a token name is 1 to 100"):
        store.create_admin_token("two words")
    assert [t["name"] for t in store.list_admin_tokens()] == ["token-1", "token-2"]


def test_a_revoked_token_is_no_longer_found(store: Store) -> None:
    _, kept = store.create_admin_token("kept")
    _, revoked = store.create_admin_token("gone")
    assert store.revoke_admin_token("gone") is True
    assert store.revoke_admin_token("gone") is False
    assert store.admin_token_name(revoked) is None
    assert store.admin_token_name(kept) == "kept"
    with pytest.raises(NotFound, match="no admin token named 'nobody'"):
        store.revoke_admin_token("nobody")
    listed = {t["name"]: t["revoked_at"] for t in store.list_admin_tokens()}
    assert listed["kept"] is None and listed["gone"] is not None


def test_events_are_read_after_a_cursor_per_charger(store: Store) -> None:
    add_test_charger(store, "CP1")
    add_test_charger(store, "CP2", location_id="LOC2")
    first = store.record_charge_point_event("CP1", "FirmwareStatusNotification",
                                            {"status": "Downloading"})
    store.record_charge_point_event("CP2", "command", {"status": "Accepted"})
    second = store.record_charge_point_event("CP1", "FirmwareStatusNotification",
                                             {"status": "Downloaded"})
    assert first is not None and second is not None and second > first
    assert store.record_charge_point_event("NOPE", "command", {}) is None
    events = store.charge_point_events("CP1")
    assert [(e["id"], e["data"]["status"]) for e in events] == [
        (first, "Downloading"), (second, "Downloaded")]
    assert [e["id"] for e in store.charge_point_events("CP1", after=first)] == [second]
    assert store.charge_point_events("CP1", after=second) == []
    assert len(store.charge_point_events("CP1", limit=1)) == 1
