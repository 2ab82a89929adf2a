"""Session pushes per partner (``store.sessions``): a PUT when the session starts, then
PATCHes with what changed and only the new charging periods, a PUT again where the partner's
copy is unknown (a failed push, a new registration), and a final PUT."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from csms_doubles import ACCEPTED, add_registered_partner, add_test_charger
from sqlalchemy.engine import RowMapping

from chargerfw.csms import billing
from chargerfw.csms.store import Party, StartRequest, Store
from chargerfw.csms.tables import session_pushes

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
# Fields a session never changes: a PATCH must not repeat them.
IDENTITY = {"country_code", "party_id", "id", "start_date_time", "cdr_token", "auth_method",
            "location_id", "evse_uid", "connector_id", "currency"}


def start(store: Store) -> RowMapping:
    add_test_charger(store, "CP1", None)
    tx, created = store.start_transaction(StartRequest("CP1", 1, "TAG1", 1000, T0), ACCEPTED)
    assert created
    return tx


def meter(store: Store, tx: RowMapping, minutes: int, wh: int) -> None:
    moved = store.add_meter_values("CP1", 1, tx["id"], [billing.Sample(
        T0 + timedelta(minutes=minutes), billing.ENERGY_REGISTER, "", wh)])
    assert moved is not None


def session_pushes_to(store: Store, partner_id: int) -> list[RowMapping]:
    return [p for p in store.pushes() if p["module"] == "sessions"
            and p["partner_id"] == partner_id]


def receivers_copy(pushes: list[RowMapping]) -> dict[str, Any] | None:
    """The session as an OCPI 2.2.1 receiver holds it after the pushes that reached it: a PUT
    replaces it, a PATCH overwrites the fields it has and appends its charging periods."""
    held: dict[str, Any] | None = None
    for push in pushes:
        if push["status"] == "FAILED":
            continue
        body = copy.deepcopy(push["body"])
        if push["method"] == "PUT":
            held = body
            continue
        assert held is not None, "a PATCH before any PUT"
        assert "last_updated" in body
        for key, value in body.items():
            if key == "charging_periods":
                held.setdefault("charging_periods", []).extend(value)
            else:
                held[key] = value
    return held


def assert_patch_carries_only_changes(before: dict[str, Any], patch: dict[str, Any]) -> None:
    assert not IDENTITY & set(patch), patch
    for key, value in patch.items():
        if key not in ("charging_periods", "last_updated"):
            assert before.get(key) != value, f"{key} is unchanged but was sent"


def test_patches_carry_changed_fields_and_only_new_periods(store: Store) -> None:
    partner = add_registered_partner(store)
    tx = start(store)
    session_id = tx["session_id"]
    [put] = session_pushes_to(store, partner)
    assert put["method"] == "PUT" and put["body"]["status"] == "ACTIVE"
    assert put["url"] == f"http://emsp.invalid/ocpi/sessions/NL/CFW/{session_id}"
    for step, (minutes, wh) in enumerate([(10, 3000), (20, 6000), (30, 8000)], start=1):
        before = receivers_copy(session_pushes_to(store, partner))
        assert before is not None
        meter(store, tx, minutes, wh)
        pushes = session_pushes_to(store, partner)
        patch = pushes[-1]
        assert len(pushes) == step + 1 and patch["method"] == "PATCH"
        assert_patch_carries_only_changes(before, patch["body"])
        assert [p["start_date_time"] for p in patch["body"]["charging_periods"]] == [
            (T0 + timedelta(minutes=minutes - 10)).strftime("%Y-%m-%dT%H:%M:%SZ")]
        # The receiver, appending as the spec says, holds exactly our session.
        assert receivers_copy(pushes) == store.get_session(session_id)
    store.stop_transaction("CP1", tx["id"], 9000, T0 + timedelta(minutes=40), "Local")
    assert store.build_due_cdrs() == 1
    final = session_pushes_to(store, partner)[-1]
    assert final["method"] == "PUT" and final["body"]["status"] == "COMPLETED"
    assert final["body"] == store.get_session(session_id)
    with store.engine.connect() as c:  # a completed session changes no more
        assert c.execute(sa.select(sa.func.count()).select_from(session_pushes)).scalar() == 0


def test_a_failed_push_makes_the_next_one_a_put(store: Store) -> None:
    partner = add_registered_partner(store)
    tx = start(store)
    meter(store, tx, 10, 3000)
    patch = session_pushes_to(store, partner)[-1]
    assert patch["method"] == "PATCH"
    store.push_failed(patch["id"], "HTTP 500", None)  # given up: the partner lacks a period
    meter(store, tx, 20, 6000)
    pushes = session_pushes_to(store, partner)
    assert pushes[-1]["method"] == "PUT"
    assert len(pushes[-1]["body"]["charging_periods"]) == 2
    assert receivers_copy(pushes) == store.get_session(tx["session_id"])
    meter(store, tx, 30, 8000)  # and from that PUT on, PATCHes again
    pushes = session_pushes_to(store, partner)
    assert pushes[-1]["method"] == "PATCH"
    assert receivers_copy(pushes) == store.get_session(tx["session_id"])


def test_a_partner_that_registers_again_gets_the_whole_session(store: Store) -> None:
    partner = add_registered_partner(store)
    tx = start(store)
    meter(store, tx, 10, 3000)
    store.register_partner(partner, "new-token", "http://emsp.invalid/ocpi/versions", "2.2.1", [
        {"identifier": "sessions", "role": "RECEIVER",
         "url": "http://emsp.invalid/ocpi/sessions"}], [Party("DE", "EMS")])
    meter(store, tx, 20, 6000)
    last = session_pushes_to(store, partner)[-1]
    assert last["method"] == "PUT" and last["body"] == store.get_session(tx["session_id"])


def test_the_owner_registering_mid_session_gets_the_whole_of_it_and_no_one_else_any(
        store: Store) -> None:
    other = add_registered_partner(store, "http://other.invalid/ocpi", party_id="OTH")
    tx = start(store)  # a DE*EMS token's session
    meter(store, tx, 10, 3000)
    owner = add_registered_partner(store, "http://late.invalid/ocpi")  # joins mid-session
    meter(store, tx, 20, 6000)
    meter(store, tx, 30, 9000)
    session = store.get_session(tx["session_id"])
    owner_pushes = session_pushes_to(store, owner)
    assert [p["method"] for p in owner_pushes] == ["PUT", "PATCH"]
    assert owner_pushes[0]["url"].startswith("http://late.invalid/ocpi/sessions/NL/CFW/")
    assert receivers_copy(owner_pushes) == session
    assert session_pushes_to(store, other) == []
