"""OCPP connector statuses as OCPI EVSE statuses (``store.status``)."""

from __future__ import annotations

import pytest

from chargerfw.csms.store import evse_status, evse_status_from_ocpp


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
