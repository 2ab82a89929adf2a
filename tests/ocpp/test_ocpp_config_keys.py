"""OCPP 1.6 configuration keys: table of Change/GetConfiguration outcomes, persisted."""

from __future__ import annotations

import pytest

from chargerfw.config.ocpp_keys import ConfigValueError, key_definitions, normalise
from chargerfw.ocpp.config_keys import ChangeStatus, ConfigurationKeys
from chargerfw.store import Store

CORE_KEYS = {
    "AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled", "AuthorizeRemoteTxRequests",
    "ClockAlignedDataInterval", "ConnectionTimeOut", "ConnectorPhaseRotation",
    "ConnectorPhaseRotationMaxLength", "GetConfigurationMaxKeys", "HeartbeatInterval",
    "LocalAuthorizeOffline", "LocalPreAuthorize", "MaxEnergyOnInvalidId",
    "MeterValuesAlignedData", "MeterValuesAlignedDataMaxLength", "MeterValuesSampledData",
    "MeterValuesSampledDataMaxLength", "MeterValueSampleInterval", "MinimumStatusDuration",
    "NumberOfConnectors", "ResetRetries", "StopTransactionOnEVSideDisconnect",
    "StopTransactionOnInvalidId", "StopTxnAlignedData", "StopTxnAlignedDataMaxLength",
    "StopTxnSampledData", "StopTxnSampledDataMaxLength", "SupportedFeatureProfiles",
    "SupportedFeatureProfilesMaxLength", "TransactionMessageAttempts",
    "TransactionMessageRetryInterval", "UnlockConnectorOnEVSideDisconnect", "WebSocketPingInterval",
}


@pytest.fixture
def keys(store):
    return ConfigurationKeys(store, number_of_connectors=2)


def test_every_core_key_is_defined(keys):
    assert CORE_KEYS <= set(keys.definitions)
    assert keys.raw("NumberOfConnectors") == "2"
    assert keys.raw("ConnectorPhaseRotation") == "0.Unknown,1.Unknown,2.Unknown"


def test_soc_is_refused_with_the_reason():
    definition = key_definitions(1)["MeterValuesSampledData"]
    with pytest.raises(ConfigValueError, match="SoC is not known here"):
        normalise(definition, "Energy.Active.Import.Register,SoC")


@pytest.mark.parametrize("key, value, status, stored", [
    ("HeartbeatInterval", "120", "Accepted", "120"),
    ("HeartbeatInterval", "0", "Rejected", None),
    ("HeartbeatInterval", "abc", "Rejected", None),
    ("HeartbeatInterval", "1.5", "Rejected", None),
    ("HeartbeatInterval", "999999", "Rejected", None),
    ("MeterValueSampleInterval", "0", "Accepted", "0"),
    ("LocalPreAuthorize", "TRUE", "Accepted", "true"),
    ("LocalPreAuthorize", "yes", "Rejected", None),
    ("LocalPreAuthorize", "1", "Rejected", None),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,Power.Active.Import,Voltage",
     "Accepted", "Energy.Active.Import.Register,Power.Active.Import,Voltage"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register, Current.Import", "Accepted",
     "Energy.Active.Import.Register,Current.Import"),
    ("MeterValuesSampledData", "Energy.Bogus", "Rejected", None),
    ("MeterValuesSampledData", "SoC", "Rejected", None),  # valid measurand, not measured here
    ("MeterValuesSampledData", "Energy.Active.Import.Register,Current.Offered,Power.Offered",
     "Accepted", "Energy.Active.Import.Register,Current.Offered,Power.Offered"),
    ("MeterValuesAlignedData", "Current.Offered", "Accepted", "Current.Offered"),
    ("MeterValuesSampledData", "Voltage,Voltage", "Rejected", None),
    ("MeterValuesSampledData", "Voltage,,Frequency", "Rejected", None),
    ("StopTxnSampledData", "", "Accepted", ""),
    ("ConnectorPhaseRotation", "0.RST,1.RST,2.Unknown", "Accepted", "0.RST,1.RST,2.Unknown"),
    ("ConnectorPhaseRotation", "1.ABC", "Rejected", None),
    # Stored and reported as written: a list naming some connectors, any order.
    ("ConnectorPhaseRotation", "2.TSR,1.NotApplicable", "Accepted", "2.TSR,1.NotApplicable"),
    ("ConnectorPhaseRotation", "1.RST,1.RTS", "Rejected", None),  # a connector twice
    ("ConnectorPhaseRotation", "3.RST", "Rejected", None),  # no connector 3 (fixture: 2)
    ("ConnectorPhaseRotation", "\u0661.RST", "Rejected", None),  # Arabic-Indic digit
    ("ConnectorPhaseRotation", "01.RST", "Rejected", None),
    ("ConnectorPhaseRotation", "1.rst", "Rejected", None),
    ("ConnectorPhaseRotation", "1RST", "Rejected", None),
    ("NumberOfConnectors", "3", "Rejected", None),
    ("SupportedFeatureProfiles", "Core", "Rejected", None),
    ("GetConfigurationMaxKeys", "5", "Rejected", None),
    ("NoSuchKey", "1", "NotSupported", None),
    ("WebSocketPingInterval", "0", "Accepted", "0"),
    ("MinimumStatusDuration", "30", "Accepted", "30"),
    ("MinimumStatusDuration", "-1", "Rejected", None),
    ("MinimumStatusDuration", "3601", "Rejected", None),
    ("TransactionMessageAttempts", "0", "Rejected", None),
    ("AuthorizationKey", "short", "Rejected", None),
    # Only its applier stores it (in a file of its own, never the store).
    ("AuthorizationKey", "0123456789abcdef", "Rejected", None),
    ("HeartbeatInterval", "9" * 501, "Rejected", None),
    # Taken as written or refused, never normalised: padding, other scripts' digits, digits
    # int() cannot read.
    ("HeartbeatInterval", " 7 ", "Rejected", None),
    ("HeartbeatInterval", "7\n", "Rejected", None),
    ("HeartbeatInterval", "\u0661\u0662\u0663", "Rejected", None),
    ("HeartbeatInterval", "\uff17", "Rejected", None),
    ("HeartbeatInterval", "\u00b2", "Rejected", None),
    ("HeartbeatInterval", "+7", "Rejected", None),
    ("LocalPreAuthorize", " true", "Rejected", None),
])
def test_change_configuration(store, keys, key, value, status, stored):
    result, reason = keys.change(key, value)
    assert result == ChangeStatus(status)
    assert (reason == "") == (status == "Accepted")
    assert store.config_get(key) == stored


def test_security_profile_reports_the_station_config(store):
    keys = ConfigurationKeys(store, security_profile=2)
    assert keys.get_int("SecurityProfile") == 2
    # Without the running service's applier nothing changes it.
    assert keys.change("SecurityProfile", "3") == (
        ChangeStatus.REJECTED, "SecurityProfile is changed by the running service only")
    assert keys.get_int("SecurityProfile") == 2 and store.config_get("SecurityProfile") is None


def test_an_applier_decides_and_stores_instead_of_the_store(store, keys):
    applied, seen = [], []
    keys.add_listener(lambda key, value: seen.append((key, value)))
    keys.set_applier("AuthorizationKey", lambda value: (
        (ChangeStatus.REJECTED, "no") if value.startswith("x") else
        (applied.append(value) or ChangeStatus.ACCEPTED, "")))
    assert keys.change("AuthorizationKey", "x123456789abcdef") == (ChangeStatus.REJECTED, "no")
    assert keys.change("AuthorizationKey", "0123456789abcdef") == (ChangeStatus.ACCEPTED, "")
    assert applied == ["0123456789abcdef"] and seen == [("AuthorizationKey", "0123456789abcdef")]
    assert store.config_get("AuthorizationKey") is None
    with pytest.raises(ValueError, match="has no applier"):
        keys.set_applier("HeartbeatInterval", lambda value: (ChangeStatus.ACCEPTED, ""))


def test_get_configuration_all_and_requested(keys):
    entries, unknown = keys.get_configuration(None)
    by_key = {e.key: e for e in entries}
    assert unknown == [] and set(by_key) == set(keys.definitions)
    assert by_key["AuthorizationKey"].value is None  # write-only: never read back
    assert by_key["NumberOfConnectors"].readonly is True
    assert by_key["HeartbeatInterval"].readonly is False
    entries, unknown = keys.get_configuration(["HeartbeatInterval", "Bogus"])
    assert [(e.key, e.value) for e in entries] == [("HeartbeatInterval", "300")]
    assert unknown == ["Bogus"]


def test_values_persist_and_listeners_fire(tmp_path):
    seen = []
    with Store(tmp_path / "s.db") as s:
        keys = ConfigurationKeys(s)
        keys.add_listener(lambda k, v: seen.append((k, v)))
        keys.change("HeartbeatInterval", "42")
        keys.change("HeartbeatInterval", "nope")
    assert seen == [("HeartbeatInterval", "42")]
    with Store(tmp_path / "s.db") as s:
        keys = ConfigurationKeys(s, overrides={"HeartbeatInterval": "77"})
        assert keys.get_int("HeartbeatInterval") == 42  # the backend's value wins over provisioning
        assert keys.get_list("MeterValuesSampledData") == ["Energy.Active.Import.Register"]
        assert keys.get_bool("LocalAuthorizeOffline") is True


SMART_CHARGING_KEYS = {
    "ChargeProfileMaxStackLevel": "10", "ChargingScheduleAllowedChargingRateUnit": "Current,Power",
    "ChargingScheduleMaxPeriods": "24", "MaxChargingProfilesInstalled": "20",
    "ConnectorSwitch3to1PhaseSupported": "false",
}


def test_smart_charging_keys_are_read_only_and_advertised(keys):
    entries, unknown = keys.get_configuration(list(SMART_CHARGING_KEYS))
    assert unknown == []
    assert {e.key: (e.value, e.readonly) for e in entries} == {
        k: (v, True) for k, v in SMART_CHARGING_KEYS.items()}
    assert "SmartCharging" in keys.get_list("SupportedFeatureProfiles")
    status, reason = keys.change("ChargeProfileMaxStackLevel", "20")
    assert (status, reason) == (ChangeStatus.REJECTED, "ChargeProfileMaxStackLevel is read-only")
