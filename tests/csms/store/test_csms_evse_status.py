"""OCPP connector statuses as OCPI EVSE statuses, and when a charger counts as offline
(``store.status``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chargerfw.csms.store import evse_status, evse_status_from_ocpp
from chargerfw.csms.store.status import is_offline


@pytest.mark.parametrize(("ocpp", "ocpi"), [
    ("Available", "AVAILABLE"), ("Preparing", "CHARGING"), ("Charging", "CHARGING"),
    ("SuspendedEV", "CHARGING"), ("SuspendedEVSE", "CHARGING"), ("Finishing", "CHARGING"),
    ("Reserved", "RESERVED"), ("Unavailable", "INOPERATIVE"), ("Faulted", "OUTOFORDER"),
    ("Bogus", "UNKNOWN")])
def test_evse_status_mapping(ocpp: str, ocpi: str) -> None:
    assert evse_status_from_ocpp(ocpp) == ocpi


@pytest.mark.parametrize(("own", "whole", "ocpi"), [
    (None, None, "UNKNOWN"), ("Charging", None, "CHARGING"), ("Charging", "Available", "CHARGING"),
    ("Available", "Unavailable", "INOPERATIVE"), (None, "Unavailable", "INOPERATIVE"),
    ("Charging", "Faulted", "OUTOFORDER"), ("Reserved", "Faulted", "OUTOFORDER"),
    ("Faulted", "Unavailable", "OUTOFORDER")])
def test_connector_zero_overrides_each_evse_status(own: str | None, whole: str | None,
                                                   ocpi: str) -> None:
    assert evse_status(own, whole) == ocpi


GRACE = timedelta(minutes=5)
HEARTBEAT = timedelta(minutes=10)
NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("connected", "silent_for", "offline"), [
    (False, GRACE, False), (False, GRACE + timedelta(seconds=1), True),
    (True, GRACE + timedelta(seconds=1), False), (True, HEARTBEAT + GRACE, False),
    (True, HEARTBEAT + GRACE + timedelta(seconds=1), True)])
def test_a_charger_is_offline_after_the_grace_period(connected: bool, silent_for: timedelta,
                                                     offline: bool) -> None:
    assert is_offline(connected, NOW - silent_for, NOW, GRACE, HEARTBEAT) is offline
