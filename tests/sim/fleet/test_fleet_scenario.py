"""Scenario files for `chargerfw sim fleet`: the shipped examples, the step models, errors that
name the key and the step, random sessions from a seed, the fleet's own settings checks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from chargerfw.hwdata import data_path
from chargerfw.sim.fleet import (
    FleetError,
    FleetSettings,
    RandomProfile,
    check_scenario_fits,
    random_session,
    station_config,
)
from chargerfw.sim.scenario import (
    Charge,
    Fault,
    ScenarioError,
    Tap,
    charger_uid,
    load_scenario,
    parse_scenario,
)


def problems(data: dict) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(data, "test.toml")
    return info.value.problems


def test_shipped_scenarios_load() -> None:
    basic = load_scenario(data_path("scenarios") / "basic-session.toml")
    assert basic.name == "basic-session"
    assert [s.action for s in basic.step] == ["plug_in", "tap", "charge", "tap", "wait", "unplug"]
    charge = basic.step[2]
    assert isinstance(charge, Charge) and charge.power_w == 11000 and charge.duration_s == 20
    fault = load_scenario(data_path("scenarios") / "rcd-fault.toml")
    faults = [s for s in fault.step if isinstance(s, Fault)]
    assert [(f.kind, f.clear_after_s) for f in faults] == [("rcd", 5)]


def test_defaults_and_name_from_file(tmp_path: Path) -> None:
    path = tmp_path / "quick-one.toml"
    path.write_text('[[step]]\naction = "plug_in"\n[[step]]\naction = "tap"\nuid = "04:a1:b2:c3"\n')
    scenario = load_scenario(path)
    assert scenario.name == "quick-one"
    assert (scenario.repeat, scenario.stagger_s, scenario.pause_s) == (1, 0.2, 0.0)
    tap = scenario.step[1]
    assert isinstance(tap, Tap) and tap.uid == "04A1B2C3" and tap.expect == "auto"


def test_wrong_value_names_step_number_action_and_key() -> None:
    found = problems({"step": [{"action": "plug_in"},
                               {"action": "charge", "duration_s": 10, "power_w": -5}]})
    assert found == ["step[2] (charge).power_w: Expected `float` > 0.0"]


def test_charge_needs_exactly_one_of_power_or_current() -> None:
    both = problems({"step": [{"action": "charge", "duration_s": 1, "power_w": 1000,
                               "current_a": 6}]})
    assert both == ["step[1] (charge): give exactly one of power_w or current_a"]
    neither = problems({"step": [{"action": "charge", "duration_s": 1}]})
    assert neither == ["step[1] (charge): give exactly one of power_w or current_a"]


def test_unknown_and_missing_keys() -> None:
    found = problems({"repeats": 2, "step": [{"action": "wait"},
                                             {"action": "unplug", "force": True}]})
    assert "repeats: unknown key" in found
    assert "step[1] (wait).duration_s: required key is missing" in found
    assert "step[2] (unplug).force: unknown key" in found


def test_unknown_action_lists_the_known_ones() -> None:
    found = problems({"step": [{"action": "plug_in"}, {"action": "teleport"}]})
    assert len(found) == 1
    assert found[0].startswith("step[2].action: unknown action 'teleport'; known: plug_in, tap")
    missing = problems({"step": [{"duration_s": 3}]})
    assert missing[0].startswith("step[1].action: required key is missing")


def test_fault_kind_and_uid_checked() -> None:
    found = problems({"step": [{"action": "fault", "kind": "lightning"},
                               {"action": "tap", "uid": "not-hex"}]})
    assert found[0].startswith("step[1] (fault).kind: Expected one of 'rcd', 'estop'")
    assert found[1] == "step[2] (tap).uid: UID 'not-hex' is not hexadecimal"


def test_top_level_values_and_empty_steps() -> None:
    assert problems({"repeat": 0, "step": [{"action": "plug_in"}]}) == [
        "repeat: Expected `int` >= 1"]
    assert problems({"step": []}) == ["step: Expected `array` of length >= 1"]
    assert problems({}) == ["step: required key is missing"]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read file"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[step]\naction = 1\n")
    with pytest.raises(ScenarioError, match="not valid TOML"):
        load_scenario(bad)


def test_charger_cards_are_distinct_valid_uids() -> None:
    uids = [charger_uid(i) for i in (1, 2, 255, 10_000)]
    assert uids[0] == "F1EE7000000001" and uids[2] == "F1EE70000000FF"
    assert len(set(uids)) == 4 and all(len(u) == 14 for u in uids)
    with pytest.raises(ValueError):
        charger_uid(0)


def test_random_sessions_repeat_with_the_seed_and_stay_plausible() -> None:
    profile = RandomProfile()
    first = [random_session(random.Random("7-1"), profile, 22080) for _ in range(1)]
    again = [random_session(random.Random("7-1"), profile, 22080) for _ in range(1)]
    other = [random_session(random.Random("8-1"), profile, 22080) for _ in range(1)]
    assert first == again
    assert first != other
    rng = random.Random(3)
    for _ in range(200):
        steps = random_session(rng, profile, 11000)
        actions = [s.action for s in steps]
        assert actions[:4] == ["wait", "plug_in", "wait", "tap"] and actions[-1] == "unplug"
        charges = [s for s in steps if isinstance(s, Charge)]
        assert len(charges) == 1
        assert charges[0].power_w is not None and 3700 <= charges[0].power_w <= 11000
        assert actions.count("suspend") == actions.count("resume") <= 1


def test_fleet_settings_checked(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="count"):
        FleetSettings(count=0, csms_url="ws://127.0.0.1:1/ocpp")
    with pytest.raises(FleetError, match="ws://"):
        FleetSettings(count=1, csms_url="http://127.0.0.1:1/ocpp")
    with pytest.raises(FleetError, match="id prefix"):
        FleetSettings(count=1, csms_url="ws://127.0.0.1:1/ocpp", id_prefix="a/b")
    settings = FleetSettings(count=12, csms_url="ws://127.0.0.1:1/ocpp", password="pw")
    config = station_config(settings, 7, tmp_path)
    assert config.station.id == "FLEET-007" and config.hardware == "sim"
    assert config.ocpp is not None and config.ocpp.security_profile == 1
    assert config.connector[0].meter.transport == "rtu"  # no socket per charger
    assert config.storage.path == tmp_path / "state.db"


def test_scenario_asking_more_power_than_the_station_gives(tmp_path: Path) -> None:
    settings = FleetSettings(count=1, csms_url="ws://127.0.0.1:1/ocpp")
    config = station_config(settings, 1, tmp_path)
    greedy = parse_scenario({"step": [{"action": "plug_in"},
                                      {"action": "charge", "duration_s": 1, "power_w": 50000}]})
    with pytest.raises(FleetError, match=r"step\[2\] \(charge\): power_w 50000 is more than"):
        check_scenario_fits(greedy, config)
    check_scenario_fits(parse_scenario({"step": [
        {"action": "charge", "duration_s": 1, "power_w": 22000}]}), config)
