"""What a session push to one partner carries (``ocpi_objects.session_update``): OCPI 2.2.1
receivers append PATCHed charging periods and keep fields a PATCH leaves out."""

from __future__ import annotations

import copy
from typing import Any

from chargerfw.csms.store.ocpi_objects import SentSession, session_update

# The spec's "Simple Session example of just starting a session" (sessions module), with the
# cdr_token fields 2.2.1 requires.
STARTED: dict[str, Any] = {
    "country_code": "NL", "party_id": "STK", "id": "101",
    "start_date_time": "2020-03-09T10:17:09Z", "kwh": 0.0,
    "cdr_token": {"country_code": "NL", "party_id": "TST", "uid": "123abc", "type": "RFID",
                  "contract_id": "NL-TST-C12345678-S"},
    "auth_method": "WHITELIST", "location_id": "LOC1", "evse_uid": "3256",
    "connector_id": "1", "currency": "EUR", "total_cost": {"excl_vat": 2.5},
    "status": "PENDING", "last_updated": "2020-03-09T10:17:09Z"}

# The spec's "Example: adding a new ChargingPeriod" PATCH body.
SPEC_PATCH_NEW_PERIOD = {
    "kwh": 15.00,
    "charging_periods": [{"start_date_time": "2019-06-23T08:16:02Z",
                          "dimensions": [{"type": "ENERGY", "volume": 2200}]}],
    "total_cost": {"excl_vat": 0.80, "incl_vat": 0.88},
    "last_updated": "2019-06-23T08:16:02Z"}

# The spec's "Example: update the total cost" PATCH body.
SPEC_PATCH_TOTAL_COST = {"total_cost": {"excl_vat": 0.60, "incl_vat": 0.66},
                         "last_updated": "2019-06-23T08:11:00Z"}


def period(minute: int, kwh: float) -> dict[str, Any]:
    return {"start_date_time": f"2020-03-09T10:{minute:02d}:00Z",
            "dimensions": [{"type": "ENERGY", "volume": kwh}]}


def changed(session: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return copy.deepcopy(session) | fields


def test_nothing_sent_yet_is_a_put_of_the_whole_session() -> None:
    push = session_update(None, STARTED)
    assert push is not None and push.method == "PUT" and push.body == STARTED


def test_spec_example_adding_a_charging_period() -> None:
    now = changed(STARTED, kwh=15.00, total_cost={"excl_vat": 0.80, "incl_vat": 0.88},
                  charging_periods=SPEC_PATCH_NEW_PERIOD["charging_periods"],
                  last_updated="2019-06-23T08:16:02Z")
    push = session_update(SentSession.of(STARTED), now)
    assert push is not None and push.method == "PATCH"
    assert push.body == SPEC_PATCH_NEW_PERIOD


def test_spec_example_updating_the_total_cost() -> None:
    now = changed(STARTED, total_cost={"excl_vat": 0.60, "incl_vat": 0.66},
                  last_updated="2019-06-23T08:11:00Z")
    push = session_update(SentSession.of(STARTED), now)
    assert push is not None and push.method == "PATCH"
    assert push.body == SPEC_PATCH_TOTAL_COST


def test_a_patch_carries_only_the_periods_the_partner_lacks() -> None:
    held = changed(STARTED, status="ACTIVE", charging_periods=[period(17, 1.0), period(27, 2.0)])
    now = changed(held, kwh=4.5, charging_periods=[period(17, 1.0), period(27, 2.0),
                                                   period(37, 1.5)],
                  last_updated="2020-03-09T10:47:00Z")
    push = session_update(SentSession.of(held), now)
    assert push is not None and push.method == "PATCH"
    assert push.body == {"kwh": 4.5, "charging_periods": [period(37, 1.5)],
                         "last_updated": "2020-03-09T10:47:00Z"}


def test_a_changed_or_missing_period_the_partner_holds_needs_a_put() -> None:
    held = changed(STARTED, charging_periods=[period(17, 1.0), period(27, 2.0)])
    for periods in ([period(17, 1.1), period(27, 2.0), period(37, 1.0)],  # first one changed
                    [period(17, 1.0)],  # one went away
                    [period(27, 2.0), period(17, 1.0)]):  # reordered
        now = changed(held, charging_periods=periods, last_updated="2020-03-09T11:00:00Z")
        push = session_update(SentSession.of(held), now)
        assert push is not None and push.method == "PUT" and push.body == now


def test_a_field_that_went_away_needs_a_put() -> None:
    now = {k: v for k, v in STARTED.items() if k != "total_cost"}
    push = session_update(SentSession.of(STARTED), now | {"last_updated": "2020-03-09T11:00Z"})
    assert push is not None and push.method == "PUT"


def test_only_a_new_last_updated_is_no_push() -> None:
    now = changed(STARTED, last_updated="2020-03-09T11:00:00Z")
    assert session_update(SentSession.of(STARTED), now) is None
