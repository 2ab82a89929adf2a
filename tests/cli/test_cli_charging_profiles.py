"""`chargerfw status` and `chargerfw charging-profiles` show each connector's limit, its source
and the composite schedule: through the running service, and from the store when it is down."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from runtime_helpers import LiveStation, ctl, live_station, wait_status

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[LiveStation]:
    async with live_station(tmp_path) as live:
        yield live


async def test_limit_source_and_schedule(station):
    runtime, sock, cli, csms = station
    code, out, err = await cli("status")
    assert code == 0, err
    assert "limit by hardware max (32 A rating)  hardware 32 A" in out

    start = (datetime.now(UTC) - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    profile = {"chargingProfileId": 12, "stackLevel": 1, "chargingProfilePurpose":
               "TxDefaultProfile", "chargingProfileKind": "Absolute", "chargingSchedule": {
                   "chargingRateUnit": "A", "startSchedule": start, "duration": 3600,
                   "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}]}}
    reply = await csms.send_raw(json.dumps([2, "p1", "SetChargingProfile",
                                            {"connectorId": 1, "csChargingProfiles": profile}]),
                                "p1")
    assert reply[2] == {"status": "Accepted"}
    await wait_status(sock, lambda s: s["connectors"][0]["current_limit_a"] == 10.0)

    code, out, err = await cli("status")
    assert code == 0, err
    assert ("limit by profile (profile 12 (TxDefaultProfile))  smart charging 10 A  "
            "hardware 32 A") in out
    code, out, err = await cli("status", "--json")
    limit = json.loads(out)["status"]["connectors"][0]["limit"]
    assert limit == {"source": "profile", "detail": "profile 12 (TxDefaultProfile)",
                     "smart_charging_a": 10.0, "thermal_a": None, "hardware_max_a": 32.0,
                     "offline_fallback": False}

    # Thermal derating and the profile combine as the minimum: 63 °C derates to 22.4 A, the
    # profile's 10 A still limits.
    await ctl(sock, "sim.temperature", celsius=63.0)
    status = await wait_status(sock, lambda s: s["connectors"][0]["limit"]["thermal_a"])
    connector = status["connectors"][0]
    assert connector["limit"]["thermal_a"] == pytest.approx(22.4)
    assert (connector["current_limit_a"], connector["limit"]["source"]) == (10.0, "profile")
    code, out, err = await cli("status")
    assert "smart charging 10 A  thermal 22.4 A  hardware 32 A" in out

    code, out, err = await cli("charging-profiles", "--connector", "1", "--duration", "7200")
    assert code == 0, err
    assert (f"profile 12  TxDefaultProfile  stack level 1  connector 1  Absolute from {start} "
            "for 3600 s: +0 s 10 A") in out
    [schedule_line] = [line for line in out.splitlines() if line.startswith("schedule")]
    assert "connector 1" in schedule_line and "for 7200 s: +0 s 10 A, +" in schedule_line
    assert schedule_line.endswith(" 32 A")
    code, out, err = await cli("charging-profiles", "--json", "--unit", "W")
    reply = json.loads(out)
    assert [s["connector"] for s in reply["schedules"]] == [0, 1]
    assert reply["schedules"][1]["periods"][0]["limit"] == 6900
    assert reply["profiles"][0]["charging_profile_id"] == 12


async def test_direct_path_reads_the_store(tmp_path):
    async with live_station(tmp_path) as (runtime, sock, cli, csms):
        profile = {"chargingProfileId": 3, "stackLevel": 0, "chargingProfilePurpose":
                   "ChargePointMaxProfile", "chargingProfileKind": "Relative",
                   "chargingSchedule": {"chargingRateUnit": "W", "chargingSchedulePeriod": [
                       {"startPeriod": 0, "limit": 11040}]}}
        reply = await csms.send_raw(json.dumps([2, "p", "SetChargingProfile",
                                                {"connectorId": 0, "csChargingProfiles": profile}]),
                                    "p")
        assert reply[2] == {"status": "Accepted"}
    # The service is gone: the store's profiles, the schedule without transactions.
    code, out, err = await cli("charging-profiles", "--connector", "1")
    assert code == 0, err
    assert "service    not running" in out
    assert "schedule   connector 1 from " in out and "for 86400 s: +0 s 16 A" in out
