"""The station config: valid files load, and every problem names its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chargerfw.config import ConfigError, known_meter_models, load_config, parse_config
from chargerfw.config.wiring import (
    ContactWiring,
    contactors_without_mirror,
    inputs_not_fail_safe,
    safety_inputs,
)
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
    # Profiles 2 and 3 need a wss:// URL: the url itself or secure_url (a remote raise).
    raised = parse_config(tomllib.loads(
        base + 'security_profile = 3\nsecure_url = "wss://h:8443/ocpp/"\n')).ocpp
    assert raised.tls_url == "wss://h:8443/ocpp" and raised.password is None
    (problem,) = problems_of(base + 'secure_url = "ws://h"\n')
    assert problem == "ocpp.secure_url: must start with wss://"
    (problem,) = problems_of(base + 'keys = {SecurityProfile = "2"}\n')
    assert "SecurityProfile: provisioned by [ocpp] security_profile" in problem


def test_a_password_in_a_file_everyone_may_read_is_warned_about(tmp_path: Path) -> None:
    from chargerfw.logs import capture_logs

    path = tmp_path / "station.toml"
    path.write_text(MINIMAL + '\n[ocpp]\nurl = "ws://h"\nsecurity_profile = 1\npassword = "pw"\n')
    path.chmod(0o644)
    with capture_logs() as logged:
        load_config(path)
    (warning,) = [e for e in logged if e["event"] == "config.password_readable_by_all"]
    assert warning["mode"] == "0644" and "chmod 0640" in warning["fix"]
    path.chmod(0o640)  # readable by the service's group only: fine
    with capture_logs() as logged:
        load_config(path)
    assert not [e for e in logged if e["event"] == "config.password_readable_by_all"]


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


# -- the safety inputs' wiring ------------------------------------------------------------------
SAFETY_INPUTS = MINIMAL.replace("[connector.contactor]\npin = 17\n",
                                "[connector.contactor]\npin = 17\nfeedback_pin = 27\n") + """
[rcm]
pin = 5
test_pin = 6
[emergency_stop]
pin = 13
"""


def test_safety_inputs_default_to_normally_closed_with_pull_up() -> None:
    config = parse_config(tomllib.loads(SAFETY_INPUTS))
    assert config.rcm is not None and config.emergency_stop is not None
    contactor = config.connector_by_id(1).contactor
    for section in (config.rcm, config.emergency_stop):
        assert (section.wiring, section.pull) == ("normally_closed", "up")
        assert section.contact_wiring == ContactWiring("normally_closed", "up")
    assert (contactor.feedback_wiring, contactor.feedback_pull) == ("normally_closed", "up")
    assert contactor.feedback_contact_wiring == ContactWiring("normally_closed", "up")
    assert inputs_not_fail_safe(config) == []


# wiring, pull -> the level that means "tripped" / "main contacts closed", and where a closed
# contact holds the line
@pytest.mark.parametrize(("wiring", "pull", "active_level", "closed_level", "fail_safe"), [
    ("normally_closed", "up", True, False, True),  # the contact to GND opens: the pull-up wins
    ("normally_closed", "down", False, True, True),  # to 3.3 V opens: the pull-down wins
    ("normally_open", "up", False, False, False),  # to GND closes: pulled low
    ("normally_open", "down", True, True, False),  # to 3.3 V closes: pulled high
])
def test_contact_wiring_levels(wiring, pull, active_level, closed_level, fail_safe) -> None:
    contact = ContactWiring(wiring, pull)
    assert contact.active_level is active_level
    assert contact.closed_level is closed_level
    assert contact.fail_safe is fail_safe
    # A cut wire leaves the line at the pull level: active exactly when fail-safe.
    assert ((pull == "up") == active_level) is fail_safe


def test_wiring_values_are_checked() -> None:
    (problem,) = problems_of(SAFETY_INPUTS + 'wiring = "closed"\n')
    assert problem == ("emergency_stop.wiring: Expected one of 'normally_closed', "
                       "'normally_open', got 'closed'")
    text = SAFETY_INPUTS.replace("feedback_pin = 27\n", 'feedback_pin = 27\nfeedback_pull = "off"\n')
    (problem,) = problems_of(text)
    assert problem == "connector[1].contactor.feedback_pull: Expected one of 'up', 'down', got 'off'"


def test_old_polarity_keys_name_their_replacement() -> None:
    text = (SAFETY_INPUTS.replace("pin = 5\n", "pin = 5\nactive_low = true\n")
            .replace("feedback_pin = 27\n", "feedback_pin = 27\nfeedback_active_high = true\n")
            + "active_low = false\n")
    problems = problems_of(text)
    assert len(problems) == 3
    by_key = {problem.split(": ", 1)[0]: problem.split(": ", 1)[1] for problem in problems}
    for key in ("rcm.active_low", "emergency_stop.active_low"):
        assert by_key[key].startswith("`active_low` was replaced by `wiring` and `pull`: ")
        assert ('active_low = true with a contact that closes on a trip (to GND, pull-up) is '
                'wiring = "normally_open", pull = "up"') in by_key[key]
        assert 'wiring = "normally_closed"' in by_key[key]
    feedback = by_key["connector[1].contactor.feedback_active_high"]
    assert feedback.startswith(
        "`feedback_active_high` was replaced by `feedback_wiring` and `feedback_pull`: ")
    assert 'feedback_wiring = "normally_open", feedback_pull = "down"' in feedback
    assert 'feedback_wiring = "normally_closed"' in feedback
    # The lock keeps its polarity keys; a typo anywhere is still just unknown.
    assert problems_of(MINIMAL + "\n[connector.lock]\npin = 22\nactive_low = true\n") == [
        "connector[1].lock.active_low: unknown key"]


def test_normally_open_safety_inputs_on_a_pi_are_listed() -> None:
    text = (SAFETY_INPUTS.replace("pin = 5\n", 'pin = 5\nwiring = "normally_open"\n')
            .replace("feedback_pin = 27\n", 'feedback_pin = 27\nfeedback_wiring = "normally_open"\n'))
    config = parse_config(tomllib.loads(text))
    assert [(item.key, item.why_not_fail_safe) for item in inputs_not_fail_safe(config)] == [
        ("rcm", 'wiring = "normally_open": a cut wire or a floating pin reads as not tripped, '
                "so a residual current would not stop a charge"),
        ("connector[1].contactor",
         'feedback_wiring = "normally_open": a cut feedback wire reads as main contacts open, '
         "so a welded contactor would read as ok"),
    ]
    assert [item.key for item in safety_inputs(config)] == [
        "rcm", "emergency_stop", "connector[1].contactor"]
    # Simulated hardware has no wire to cut.
    assert inputs_not_fail_safe(parse_config(tomllib.loads('hardware = "sim"\n' + text))) == []
    # Without a feedback pin there is no mirror contact to judge.
    no_feedback = text.replace("feedback_pin = 27\n", "")
    assert [item.key for item in inputs_not_fail_safe(parse_config(tomllib.loads(no_feedback)))] \
        == ["rcm"]


def test_a_pi_contactor_without_a_mirror_contact_is_listed() -> None:
    with_mirror = parse_config(tomllib.loads(SAFETY_INPUTS))
    assert contactors_without_mirror(with_mirror) == []
    without = SAFETY_INPUTS.replace("feedback_pin = 27\n", "")
    assert contactors_without_mirror(parse_config(tomllib.loads(without))) == [
        "connector[1].contactor"]
    # Simulated hardware models the mirror contact itself.
    assert contactors_without_mirror(
        parse_config(tomllib.loads('hardware = "sim"\n' + without))) == []


def test_smart_charging_section() -> None:
    config = parse_config(tomllib.loads(MINIMAL))
    assert (config.smart_charging.time_zone, config.smart_charging.offline_limit_a,
            config.smart_charging.offline_after_s) == ("UTC", None, 300.0)
    config = parse_config(tomllib.loads(
        MINIMAL + '\n[smart_charging]\ntime_zone = "Europe/Amsterdam"\noffline_limit_a = 10\n'
        "offline_after_s = 60\n"))
    assert config.smart_charging.offline_limit_a == 10.0
    assert problems_of(MINIMAL + '\n[smart_charging]\ntime_zone = "Mars/Olympus"\n'
                       "offline_limit_a = -1\n") == [
        "smart_charging.offline_limit_a: Expected `float` >= 0.0"]
    assert problems_of(MINIMAL + '\n[smart_charging]\ntime_zone = "Mars/Olympus"\n') == [
        "smart_charging.time_zone: unknown time zone 'Mars/Olympus' (an IANA name such as "
        "Europe/Amsterdam)"]
