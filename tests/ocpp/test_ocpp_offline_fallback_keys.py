"""The offline fallback as vendor configuration keys: ChargerfwOfflineLimitA (A, one decimal,
empty: none) and ChargerfwOfflineAfterS (s); defaults from the station config, validated by
ChangeConfiguration, persisted like every writable key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chargerfw.config import parse_config
from chargerfw.config.ocpp_keys import ConfigValueError, key_definitions
from chargerfw.ocpp.config_keys import ChangeStatus, ConfigurationKeys
from chargerfw.store import Store

STATION = """
[station]
id = "CP1"
[[connector]]
id = 1
[connector.meter]
model = "eastron-sdm630-v2"
transport = "tcp"
[connector.contactor]
pin = 17
[connector.pilot]
pwm_pin = 18
"""
LIMIT, AFTER = "ChargerfwOfflineLimitA", "ChargerfwOfflineAfterS"


def defaults_of(smart_charging: str) -> dict[str, str]:
    return parse_config(tomllib.loads(STATION + "[smart_charging]\n" + smart_charging)
                        ).ocpp_key_defaults()


@pytest.mark.parametrize("section, limit, after", [
    ("", "", "300"),  # no fallback: the profiles alone
    ("offline_limit_a = 10\noffline_after_s = 60\n", "10", "60"),
    ("offline_limit_a = 7.56\noffline_after_s = 0.5\n", "7.5", "1"),  # key resolution
])
def test_defaults_come_from_the_station_config(store, section, limit, after):
    keys = ConfigurationKeys(store, defaults=defaults_of(section))
    assert (keys.raw(LIMIT), keys.raw(AFTER)) == (limit, after)
    entries, _ = keys.get_configuration([LIMIT, AFTER])
    assert [(e.key, e.value, e.readonly) for e in entries] == [
        (LIMIT, limit, False), (AFTER, after, False)]
    assert store.config_get(LIMIT) is None  # a default, not written: a config change shows


@pytest.mark.parametrize("key, value, status, stored", [
    (LIMIT, "8", "Accepted", "8"),
    (LIMIT, "6.5", "Accepted", "6.5"),
    (LIMIT, "0", "Accepted", "0"),
    (LIMIT, "80", "Accepted", "80"),
    (LIMIT, "8.0", "Accepted", "8"),
    (LIMIT, "", "Accepted", ""),  # no fallback
    (LIMIT, "80.1", "Rejected", None),
    (LIMIT, "-1", "Rejected", None),
    (LIMIT, "6.55", "Rejected", None),
    (LIMIT, " 7", "Rejected", None),
    (LIMIT, "١٢", "Rejected", None),
    (LIMIT, "nan", "Rejected", None),
    (LIMIT, "1e1", "Rejected", None),
    (AFTER, "30", "Accepted", "30"),
    (AFTER, "0", "Accepted", "0"),
    (AFTER, "1.5", "Rejected", None),
    (AFTER, "86401", "Rejected", None),
])
def test_change_configuration_validates(store, key, value, status, stored):
    keys = ConfigurationKeys(store, defaults=defaults_of("offline_limit_a = 10\n"))
    result, reason = keys.change(key, value)
    assert result == ChangeStatus(status), reason
    assert (reason == "") == (status == "Accepted")
    assert store.config_get(key) == stored


def test_a_backends_value_persists_and_wins_over_the_config(tmp_path: Path):
    with Store(tmp_path / "s.db") as store:
        keys = ConfigurationKeys(store, defaults=defaults_of("offline_limit_a = 10\n"))
        assert keys.change(LIMIT, "6")[0] is ChangeStatus.ACCEPTED
    with Store(tmp_path / "s.db") as store:
        keys = ConfigurationKeys(store, defaults=defaults_of("offline_limit_a = 16\n"))
        assert keys.raw(LIMIT) == "6"
        assert keys.raw(AFTER) == "300"


def test_a_bad_default_is_refused():
    with pytest.raises(ConfigValueError, match="ChargerfwOfflineLimitA"):
        key_definitions(1, defaults={LIMIT: "81"})
    with pytest.raises(ConfigValueError, match="read-only"):
        key_definitions(1, defaults={"NumberOfConnectors": "3"})
