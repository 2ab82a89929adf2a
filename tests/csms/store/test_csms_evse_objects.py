"""EVSEs as partners see them: capabilities from what the charger supports, and evse_ids in
eMI3 form (``store.ocpi_objects``, ``CpoIdentity.evse_id_for``)."""

from __future__ import annotations

import pytest
from csms_doubles import add_test_charger

from chargerfw.csms.store import (
    ConnectorSpec,
    CpoIdentity,
    EvseSpec,
    LocationSpec,
    Store,
    StoreError,
)
from chargerfw.csms.store.ocpi_objects import evse_capabilities


@pytest.mark.parametrize(("profiles", "reader", "formats", "expected"), [
    (None, True, ["SOCKET"], ["REMOTE_START_STOP_CAPABLE", "RFID_READER", "UNLOCK_CAPABLE"]),
    ("Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
     True, ["SOCKET"], ["REMOTE_START_STOP_CAPABLE", "RESERVABLE", "RFID_READER",
                        "UNLOCK_CAPABLE"]),
    ("Core,Reservation", False, ["CABLE"], ["REMOTE_START_STOP_CAPABLE", "RESERVABLE"]),
    ("Core", False, ["CABLE", "SOCKET"], ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"]),
])
def test_capabilities_follow_what_the_charger_supports(profiles: str | None, reader: bool,
                                                       formats: list[str],
                                                       expected: list[str]) -> None:
    assert evse_capabilities(profiles, reader, formats) == expected


@pytest.mark.parametrize(("evse_format", "uid", "expected"), [
    ("{country_code}*{party_id}*E{uid}", "CP1-1", "NL*CFW*ECP1*1"),
    ("{country_code}*{party_id}*E{uid}", "lot 7/a", "NL*CFW*ELOT*7*A"),
    ("{country_code}{party_id}E{charge_point}{connector}", "x", "NLCFWECP91"),
    ("{country_code}*{party_id}*E0042*{connector}", "x", "NL*CFW*E0042*1"),
])
def test_evse_ids_are_named_in_emi3_form(evse_format: str, uid: str, expected: str) -> None:
    cpo = CpoIdentity("nl", "cfw", evse_id_format=evse_format)
    assert cpo.evse_id_for(uid, "CP9", 1) == expected


@pytest.mark.parametrize("evse_format", ["{country_code}-{party_id}-{uid}", "E{uid}",
                                         "{nope}", "{country_code}*{party_id}*E{uid}{uid}"])
def test_a_format_that_gives_no_emi3_id_is_refused(evse_format: str) -> None:
    with pytest.raises(StoreError, match="EVSE id"):
        CpoIdentity("NL", "CFW", evse_id_format=evse_format).evse_id_for(
            "CP1-1-with-a-rather-long-uid", "CP1", 1)


def test_registration_names_evses_and_refuses_a_bad_evse_id(store: Store) -> None:
    add_test_charger(store, "CP1", None)  # given NL*CFW*ECP11
    location = LocationSpec("LOC2", "Main 1", "Utrecht", "NLD", "52.08917", "5.11028",
                            "Europe/Amsterdam")
    connector = ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32)
    with pytest.raises(StoreError, match="eMI3"):
        store.add_charge_point("CP2", None, location, [
            EvseSpec("CP2-1", 1, [connector]), EvseSpec("CP2-2", 2, [connector], "CP2 two")])
    assert store.get_charge_point("CP2") is None and store.get_location("LOC2") is None
    store.add_charge_point("CP2", None, location, [
        EvseSpec("CP2-1", 1, [connector]), EvseSpec("CP2-2", 2, [connector], "nl*cfw*e22")],
        rfid_reader=False)
    evses = store.get_location("LOC2")["evses"]
    assert [(e["evse_id"], e["capabilities"]) for e in evses] == [
        ("NL*CFW*ECP2*1", ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"]),
        ("NL*CFW*E22", ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"])]
    assert store.get_location("LOC1")["evses"][0]["evse_id"] == "NL*CFW*ECP11"
