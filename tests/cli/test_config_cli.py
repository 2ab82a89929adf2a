"""`chargerfw config show|get|set|validate`: the station file and the OCPP keys in the store;
`config set` through the running service (a fake one on the control socket) and, without it,
into the store."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from diag_support import FakeService, as_json, invoke, status_result, write_station

from chargerfw.control.api import ConfigSetReply, ConfigSetRequest, Method
from chargerfw.ocpp.config_keys import ChangeStatus
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)


def test_config_show_redacts_and_lists_ocpp_keys(station, store):
    store.config_set("HeartbeatInterval", "120")
    store.config_set("AuthorizationKey", "0123456789abcdef")
    human = invoke("config", "show", "-c", station)
    assert human.exit_code == 0
    assert "sim-secret" not in human.stdout and 'password = "***"' in human.stdout
    assert "0123456789abcdef" not in human.stdout
    assert "HeartbeatInterval" in human.stdout and "120  [store]" in human.stdout
    report = as_json(invoke("config", "show", "-c", station, "--json"))
    assert report["station"]["ocpp"]["password"] == "***"
    keys = {row["key"]: row for row in report["ocpp_keys"]}
    assert keys["HeartbeatInterval"] == {"key": "HeartbeatInterval", "value": "120",
                                         "readonly": False, "source": "store"}
    assert keys["AuthorizationKey"]["value"] == "***"
    assert keys["NumberOfConnectors"]["readonly"] is True


def test_config_get(station, store):
    assert invoke("config", "get", "HeartbeatInterval", "-c", station).stdout == "300\n"
    assert invoke("config", "get", "ocpp.password", "-c", station).stdout == "***\n"
    got = as_json(invoke("config", "get", "connector[1].meter.model", "-c", station, "--json"))
    assert got == {"key": "connector[1].meter.model", "value": "eastron-sdm630-v2",
                   "kind": "station"}
    assert invoke("config", "get", "AuthorizationKey", "-c", station).exit_code == 1
    unknown = invoke("config", "get", "nosuch.key", "-c", station)
    assert unknown.exit_code == 2 and "no key" in unknown.stderr


def test_config_set_ocpp_key_validates(station, store):
    ok = invoke("config", "set", "HeartbeatInterval", "60", "-c", station, "--json")
    assert ok.exit_code == 0, ok.output
    assert as_json(ok) == {"key": "HeartbeatInterval", "kind": "ocpp", "status": "Accepted",
                           "via": "store"}
    assert store.config_get("HeartbeatInterval") == "60"
    bad = invoke("config", "set", "HeartbeatInterval", "soon", "-c", station)
    assert bad.exit_code == 1 and "expected an integer" in bad.stderr
    readonly = invoke("config", "set", "NumberOfConnectors", "2", "-c", station)
    assert readonly.exit_code == 1 and "read-only" in readonly.stderr
    assert store.config_get("HeartbeatInterval") == "60"


def test_config_set_station_file_keeps_backup_and_refuses_invalid(station):
    path = Path(station)
    before = path.read_text()
    ok = invoke("config", "set", "connector[1].max_current_a", "16", "-c", station)
    assert ok.exit_code == 0, ok.output
    assert Path(station + ".bak").read_text() == before
    after = path.read_text()
    assert tomllib.loads(after)["connector"][0]["max_current_a"] == 16
    assert "# A whole station on simulated hardware" in after  # comments kept
    bad = invoke("config", "set", "connector[1].max_current_a", "99", "-c", station)
    assert bad.exit_code == 1 and "max_current_a: Expected `float` <= 80.0" in bad.stderr
    assert path.read_text() == after  # nothing written
    typo = invoke("config", "set", "ocpp.url", "http://nope", "-c", station)
    assert typo.exit_code == 1 and "ws://" in typo.stderr
    wrong_type = invoke("config", "set", "connector[1].phases", "three", "-c", station)
    assert wrong_type.exit_code == 2 and "integer" in wrong_type.stderr
    assert path.read_text() == after


def test_config_validate(station, store, tmp_path):
    assert invoke("config", "validate", "-c", station).exit_code == 0
    store.config_set("HeartbeatInterval", "-5")  # written behind the validation's back
    bad_key = invoke("config", "validate", "-c", station, "--json")
    assert bad_key.exit_code == 1 and not as_json(bad_key)["valid"]
    broken = tmp_path / "broken.toml"
    broken.write_text('[station]\nid = "x"\nhardware = "mars"\n')
    result = invoke("config", "validate", "-c", str(broken), "--json")
    assert result.exit_code == 2
    assert any("connector" in p for p in as_json(result)["problems"])


def test_config_validate_names_what_replaced_an_old_key(tmp_path, runtime_dir):
    path = write_station(tmp_path, edit=lambda document: document["connector"][0]["contactor"]
                         .__setitem__("feedback_active_high", True))
    result = invoke("config", "validate", "-c", str(path), "--json")
    assert result.exit_code == 2
    (problem,) = as_json(result)["problems"]
    assert problem.startswith("connector[1].contactor.feedback_active_high: `feedback_active_high` "
                              "was replaced by `feedback_wiring` and `feedback_pull`: ")
    # Setting the old key is refused the same way, and the file is left as it was.
    station = write_station(tmp_path)
    before = station.read_text()
    refused = invoke("config", "set", "emergency_stop.active_low", "true", "-c", str(station))
    assert refused.exit_code == 1  # a value refused
    assert "`active_low` was replaced by `wiring` and `pull`" in refused.stderr
    assert station.read_text() == before


def test_config_set_through_the_service(station, runtime_dir, tmp_path):
    Store(tmp_path / "state.db").close()

    def refuse(request: ConfigSetRequest) -> ConfigSetReply:
        return ConfigSetReply(request.key, ChangeStatus.REJECTED, "not now")

    with FakeService(runtime_dir / "control.sock", {Method.CONFIG_SET: refuse}):
        refused = invoke("config", "set", "HeartbeatInterval", "60", "-c", station)
    assert refused.exit_code == 1 and "not now" in refused.stderr
    # A service without config.set: the store.
    with FakeService(runtime_dir / "control.sock", {Method.STATUS: lambda r: status_result()}):
        stored = invoke("config", "set", "HeartbeatInterval", "60", "-c", station, "--json")
    assert as_json(stored)["via"] == "store"
    with Store(tmp_path / "state.db") as store:
        assert store.config_get("HeartbeatInterval") == "60"
