"""The station config: valid files load, and every problem names its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chargerfw.config import ConfigError, known_meter_models, load_config, parse_config
from chargerfw.hwdata import data_path

MINIMAL = """
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


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text), "test.toml")
    return info.value.problems


def test_minimal_config_gets_defaults() -> None:
    config = parse_config(tomllib.loads(MINIMAL))
    assert config.hardware == "pi"
    connector = config.connector_by_id(1)
    assert connector.max_current_a == 16.0
    assert connector.meter.unit_id is None  # falls back to the map's default
    assert config.storage.path == Path("/var/lib/chargerfw/chargerfw.db")


@pytest.mark.parametrize("name", ["sim.toml", "pi-example.toml"])
def test_shipped_station_files_are_valid(name: str) -> None:
    config = load_config(Path(str(data_path("stations", name))))
    assert config.connector[0].id == 1


def test_unknown_key_is_named() -> None:
    assert problems_of(MINIMAL + "\n[connector.lock]\npin = 22\nfedback_pin = 23\n") == [
        "connector[1].lock.fedback_pin: unknown key"
    ]


def test_missing_key_is_named() -> None:
    text = MINIMAL.replace('[station]\nid = "CP1"\n', "[station]\n")
    assert problems_of(text) == ["station.id: required key is missing"]


def test_unknown_meter_model_lists_known_ones() -> None:
    (problem,) = problems_of(MINIMAL.replace("eastron-sdm630-v2", "acme-9000"))
    assert problem.startswith("connector[1].meter.model: unknown meter model 'acme-9000'; known: ")
    assert "eastron-sdm630-v2" in problem


def test_rtu_without_port_is_refused() -> None:
    (problem,) = problems_of(MINIMAL.replace('transport = "tcp"', 'transport = "rtu"'))
    assert problem.startswith("connector[1].meter:") and "needs 'port'" in problem


def test_pin_out_of_range_and_shared_pins() -> None:
    (problem,) = problems_of(MINIMAL.replace("pin = 17", "pin = 40"))
    assert problem.startswith("connector[1].contactor.pin:")
    (problem,) = problems_of(MINIMAL.replace("pwm_pin = 18", "pwm_pin = 17"))
    assert "GPIO 17 is used by both connector[1].contactor.pin and connector[1].pilot.pwm_pin" in problem


def test_several_problems_reported_together() -> None:
    text = MINIMAL.replace("pin = 17", 'pin = "x"').replace('id = "CP1"', "id = 5")
    assert len(problems_of(text)) == 2


def test_ocpp_profile_rules() -> None:
    base = MINIMAL + '\n[ocpp]\nurl = "ws://h/ocpp"\n'
    assert parse_config(tomllib.loads(base)).ocpp.url == "ws://h/ocpp"
    (problem,) = problems_of(base + "security_profile = 1\n")
    assert problem.startswith("ocpp:") and "needs 'password'" in problem
    (problem,) = problems_of(base + 'security_profile = 2\npassword = "p"\n')
    assert "wss://" in problem
    (problem,) = problems_of(MINIMAL + '\n[ocpp]\nurl = "http://h"\n')
    assert problem == "ocpp.url: must start with ws:// or wss://"


def test_password_is_not_in_repr() -> None:
    text = MINIMAL + '\n[ocpp]\nurl = "ws://h"\nsecurity_profile = 1\npassword = "hunter2"\n'
    assert "hunter2" not in repr(parse_config(tomllib.loads(text)))


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[station\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_every_shipped_meter_model_is_known() -> None:
    assert {"eastron-sdm630-v2", "eastron-sdm120", "abb-b23"} <= set(known_meter_models())


def test_ocpp_keys_are_provisioned_where_the_store_has_none(tmp_path: Path) -> None:
    from chargerfw.ocpp.v16.client import client_from_config
    from chargerfw.store import Store

    text = MINIMAL + ('\n[ocpp]\nurl = "ws://h"\n[ocpp.keys]\nMeterValueSampleInterval = 10\n'
                      "LocalPreAuthorize = true\n")
    config = parse_config(tomllib.loads(text))
    assert config.ocpp.keys == {"MeterValueSampleInterval": "10", "LocalPreAuthorize": "true"}
    with Store(tmp_path / "s.db") as store:
        store.config_set("LocalPreAuthorize", "false")  # a backend's earlier change wins
        client_from_config(config, store)
        assert store.config_get("MeterValueSampleInterval") == "10"
        assert store.config_get("LocalPreAuthorize") == "false"


def test_bad_ocpp_keys_are_named() -> None:
    base = MINIMAL + '\n[ocpp]\nurl = "ws://h"\n[ocpp.keys]\n'
    (problem,) = problems_of(base + "MeterValueSampleIntervall = 10\n")
    assert problem == ("ocpp.keys: MeterValueSampleIntervall: not an OCPP configuration key "
                       "this firmware knows")
    (problem,) = problems_of(base + 'LocalPreAuthorize = "maybe"\n')
    assert problem.startswith("ocpp.keys: LocalPreAuthorize: expected 'true' or 'false'")
    (problem,) = problems_of(base + "GetConfigurationMaxKeys = 5\n")
    assert "read-only" in problem
