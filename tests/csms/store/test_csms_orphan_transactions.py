"""No transaction left open for ever: one its charger gave up on is closed when the charger
starts another on that connector, or when after a reboot it reported the connector Available
and sent no stop within a grace period (and its CDR says so); a start the backend refused is closed where it began; a stop without a reason is
``Local``; a repeated stop adds nothing. Every connector of a charger that registered itself
becomes an EVSE."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from csms_doubles import ACCEPTED, add_test_charger

from chargerfw.csms import billing
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import (
    AuthDecision,
    ConnectorSpec,
    EvseSpec,
    LocationSpec,
    PageQuery,
    StartRequest,
    Store,
)
from chargerfw.csms.store.transactions import (
    ORPHAN_AFTER_BOOT,
    ORPHAN_BY_NEW_START,
    ORPHAN_GRACE,
)
from chargerfw.csms.tables import meter_values

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _energy(wh: float, at: datetime) -> list[billing.Sample]:
    return [billing.Sample(at, billing.ENERGY_REGISTER, "", wh)]


def _cdr_of(store: Store, session_id: str) -> m.CDR:
    while store.build_due_cdrs():
        pass
    [cdr] = [m.CDR.model_validate(c) for c in store.list_cdrs(PageQuery()).items
             if c["session_id"] == session_id]
    return cdr


def test_a_new_start_on_the_connector_closes_the_open_one_at_its_last_reading(
        store: Store) -> None:
    add_test_charger(store, connectors=2)
    orphan, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 1000, T0), ACCEPTED)
    store.add_meter_values("CP1", 1, orphan["id"], _energy(1800, T0 + timedelta(minutes=5)))
    other, _ = store.start_transaction(StartRequest("CP1", 2, "TAG1", 50, T0), ACCEPTED)
    later = T0 + timedelta(minutes=20)
    new, created = store.start_transaction(StartRequest("CP1", 1, "TAG2", 2500, later), ACCEPTED)
    assert created
    closed = store.get_transaction(orphan["id"])
    assert closed is not None
    assert (closed["status"], closed["stop_time"], closed["meter_stop"], closed["stop_reason"],
            closed["remark"]) == ("COMPLETED", later, 1800, "Other", ORPHAN_BY_NEW_START)
    cdr = _cdr_of(store, orphan["session_id"])
    assert cdr.remark == ORPHAN_BY_NEW_START and float(cdr.total_energy) == 0.8
    # The other connector's transaction and the new one are open.
    assert store.get_transaction(other["id"])["stop_time"] is None
    assert store.get_transaction(new["id"])["status"] == "ACTIVE"
    # The charger's stop for the orphan, should it come, adds nothing.
    row, stopped = store.stop_transaction("CP1", orphan["id"], 2400, later, "Local")
    assert not stopped and row is not None and row["meter_stop"] == 1800


def test_after_a_reboot_an_available_connector_without_a_stop_is_closed_after_the_grace(
        store: Store) -> None:
    add_test_charger(store, connectors=2)
    tx1, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
    tx2, _ = store.start_transaction(StartRequest("CP1", 2, "TAG1", 0, T0), ACCEPTED)
    # Available without a reboot closes nothing (a charger's view may lag).
    store.record_status("CP1", 1, "Available", "NoError", None)
    assert store.close_orphans_due(ORPHAN_GRACE, datetime.now(UTC) + timedelta(days=1)) == 0
    store.record_boot("CP1", "v", "m", None, None)
    # Both connectors Available after the boot: their transactions wait for a stop.
    store.record_status("CP1", 1, "Available", "NoError", None)
    store.record_status("CP1", 2, "Available", "NoError", None)
    assert store.close_orphans_due(ORPHAN_GRACE) == 0
    # A stop within the grace (the charger sent its statuses before its queued stops) counts
    # in full.
    row, stopped = store.stop_transaction("CP1", tx2["id"], 500, T0 + timedelta(hours=1),
                                          "PowerLoss")
    assert stopped and (row["meter_stop"], row["stop_reason"], row["remark"]) == (
        500, "PowerLoss", None)
    # No stop for the other: closed once the grace is over, at the Available.
    later = datetime.now(UTC) + ORPHAN_GRACE + timedelta(seconds=1)
    assert store.close_orphans_due(ORPHAN_GRACE, later) == 1
    closed = store.get_transaction(tx1["id"])
    assert closed["stop_reason"] == "Other" and closed["remark"] == ORPHAN_AFTER_BOOT
    assert _cdr_of(store, tx1["session_id"]).remark == ORPHAN_AFTER_BOOT
    # A transaction started after the boot is not an orphan of it.
    tx3, _ = store.start_transaction(StartRequest("CP1", 2, "TAG1", 500, T0 + timedelta(hours=2)),
                                     ACCEPTED)
    store.record_status("CP1", 2, "Available", "NoError", None)
    assert store.close_orphans_due(ORPHAN_GRACE, later + timedelta(days=1)) == 0
    assert store.get_transaction(tx3["id"])["stop_time"] is None


def test_a_connector_that_charges_on_after_the_reboot_keeps_its_transaction(
        store: Store) -> None:
    add_test_charger(store)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
    store.record_boot("CP1", "v", "m", None, None)
    store.record_status("CP1", 1, "Available", "NoError", None)
    store.record_status("CP1", 1, "Charging", "NoError", None)  # it resumed the session
    later = datetime.now(UTC) + ORPHAN_GRACE + timedelta(minutes=1)
    assert store.close_orphans_due(ORPHAN_GRACE, later) == 0
    assert store.get_transaction(tx["id"])["stop_time"] is None


def test_a_refused_start_is_closed_where_it_began(store: Store) -> None:
    add_test_charger(store)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "BAD", 700, T0),
                                    AuthDecision("Blocked", "AUTH_REQUEST"))
    assert (tx["status"], tx["stop_time"], tx["meter_stop"], tx["stop_reason"], tx["remark"]) \
        == ("INVALID", T0, 700, "DeAuthorized", "refused at start (Blocked)")
    assert store.active_transaction("CP1", 1) is None
    assert store.build_due_cdrs() == 0 and store.list_cdrs(PageQuery()).total == 0


def test_a_stop_without_a_reason_is_local_and_a_repeated_stop_adds_nothing(
        store: Store) -> None:
    add_test_charger(store)
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
    end = T0 + timedelta(minutes=30)
    row, stopped = store.stop_transaction("CP1", tx["id"], 900, end, None,
                                          _energy(900, end))
    assert stopped and row["stop_reason"] == "Local"
    assert store.build_due_cdrs() == 1
    with store.engine.connect() as c:
        before = c.execute(sa.select(sa.func.count()).select_from(meter_values)).scalar()
    again, stopped_again = store.stop_transaction(
        "CP1", tx["id"], 5000, end + timedelta(minutes=1), "Remote",
        _energy(5000, end + timedelta(minutes=1)))
    with store.engine.connect() as c:
        after = c.execute(sa.select(sa.func.count()).select_from(meter_values)).scalar()
    assert not stopped_again and after == before
    assert (again["meter_stop"], again["stop_reason"]) == (900, "Local")
    assert store.build_due_cdrs() == 0 and store.list_cdrs(PageQuery()).total == 1
    # Another charger cannot stop it.
    assert store.stop_transaction("CP2", tx["id"], 1, end, None) == (None, False)


def _location() -> LocationSpec:
    return LocationSpec(id="LOC9", address="Kade 2", city="Utrecht", country="NLD",
                        latitude="52.08917", longitude="5.11028", time_zone="Europe/Amsterdam")


PLUG = ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32, 22000)


def test_attaching_a_self_registered_charger_makes_every_reported_connector_an_evse(
        store: Store) -> None:
    store.auto_register("AUTO1", None)
    for connector_id in (0, 1, 2):
        store.record_status("AUTO1", connector_id, "Available", "NoError", None)
    store.attach_charge_point("AUTO1", _location(),
                              [EvseSpec(uid="AUTO1-1", ocpp_connector_id=1, connectors=[PLUG])])
    evses = {e["ocpp_connector_id"]: e for e in store.evses_of_location("LOC9")}
    assert sorted(evses) == [1, 2]
    assert evses[2]["uid"] == "AUTO1-2" and evses[2]["status"] == "AVAILABLE"
    # Its sessions become OCPI sessions and CDRs.
    tx, _ = store.start_transaction(StartRequest("AUTO1", 2, "TAG1", 0, T0), ACCEPTED)
    assert tx["evse_uid"] == "AUTO1-2"
    store.stop_transaction("AUTO1", tx["id"], 3000, T0 + timedelta(hours=1), None)
    assert _cdr_of(store, tx["session_id"]).cdr_location.evse_uid == "AUTO1-2"


def test_a_connector_first_seen_later_on_a_self_registered_charger_becomes_an_evse(
        store: Store) -> None:
    store.auto_register("AUTO2", None)
    store.record_status("AUTO2", 1, "Available", "NoError", None)
    store.attach_charge_point("AUTO2", _location(),
                              [EvseSpec(uid="AUTO2-1", ocpp_connector_id=1, connectors=[PLUG])])
    store.record_status("AUTO2", 2, "Preparing", "NoError", None)
    evses = {e["ocpp_connector_id"]: e for e in store.evses_of_location("LOC9")}
    assert sorted(evses) == [1, 2] and evses[2]["status"] == "CHARGING"  # Preparing
    # A charger the operator registered keeps the EVSEs the operator gave it.
    add_test_charger(store, "CP1")
    store.record_status("CP1", 2, "Available", "NoError", None)
    assert [e["ocpp_connector_id"] for e in store.evses_of_location("LOC1")] == [1]
