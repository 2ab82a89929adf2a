"""Smart Charging in the running station: profiles survive a SIGKILL and apply before the
backend is back, the offline fallback limit takes over while the backend is unreachable, and
the over-current interlock gives a vehicle time to follow a lower limit."""

from __future__ import annotations

import asyncio
import json
import signal
import tomllib
from pathlib import Path

import pytest
from fakes import wait_until
from ocpp_testcsms import TestCsms
from runtime_helpers import (
    StationProcess,
    ctl,
    running_station,
    sim_station_config,
    wait_status,
)

from chargerfw.config import parse_config
from chargerfw.station.metering import OverCurrentSettings
from chargerfw.station.safety import SafetySettings

pytestmark = pytest.mark.timeout(60)


def with_smart_charging(path: Path, section: str) -> Path:
    path.write_text(path.read_text() + "\n[smart_charging]\n" + section)
    return path


async def set_profile(csms: TestCsms, connector_id: int, profile: dict[str, object]) -> str:
    reply = await csms.send_raw(json.dumps([2, "sp", "SetChargingProfile", {
        "connectorId": connector_id, "csChargingProfiles": profile}]), "sp")
    return str(reply[2]["status"])


DEFAULT_10A = {"chargingProfileId": 5, "stackLevel": 0, "chargingProfilePurpose":
               "TxDefaultProfile", "chargingProfileKind": "Relative", "chargingSchedule": {
                   "chargingRateUnit": "A", "chargingSchedulePeriod": [
                       {"startPeriod": 0, "limit": 10}]}}


async def test_profiles_survive_sigkill_and_apply_offline(tmp_path: Path, short_dir: Path):
    csms = TestCsms()
    await csms.start()
    config_path, _ = sim_station_config(tmp_path, csms.url)
    station = StationProcess(config_path, short_dir, tmp_path / "station.log")
    try:
        station.start()
        await station.wait_ready()
        await csms.wait_for(lambda: csms.of("StatusNotification"))
        assert await set_profile(csms, 1, DEFAULT_10A) == "Accepted"
        await wait_status(station.socket_path,
                          lambda s: s["connectors"][0]["current_limit_a"] == 10.0)
        station.signal(signal.SIGKILL)
        assert await station.wait_exit() == -signal.SIGKILL
        await csms.stop()  # the backend stays away: the profile must apply on its own

        station.start()
        await station.wait_ready()
        status = await wait_status(station.socket_path,
                                   lambda s: s["connectors"][0]["current_limit_a"] == 10.0)
        assert status["backend"]["online"] is False
        assert status["connectors"][0]["limit"]["detail"] == "profile 5 (TxDefaultProfile)"
    finally:
        station.kill_if_running()
        await csms.stop()


async def test_offline_fallback_limit(tmp_path: Path, short_dir: Path):
    async with TestCsms() as csms:
        config_path, _ = sim_station_config(tmp_path, csms.url)
        with_smart_charging(config_path, "offline_limit_a = 8\noffline_after_s = 1\n")
        config = parse_config(tomllib.loads(config_path.read_text()))
        sock = short_dir / "control.sock"
        async with running_station(config, sock):
            await csms.wait_for(lambda: csms.of("StatusNotification"))
            assert await set_profile(csms, 1, DEFAULT_10A) == "Accepted"
            await wait_status(sock, lambda s: s["connectors"][0]["current_limit_a"] == 10.0)
            port = csms.port
            await csms.stop()
            await csms.drop_connections()
            status = await wait_status(sock, lambda s: s["connectors"][0]["limit"]["source"]
                                       == "offline_fallback")
            connector = status["connectors"][0]
            assert connector["current_limit_a"] == 8.0 and connector["limit"]["offline_fallback"]
            # The backend is back: the profile's limit again.
            await csms.start(port)
            status = await wait_status(sock, lambda s: s["backend"]["online"]
                                       and s["connectors"][0]["current_limit_a"] == 10.0,
                                       timeout=30)
            assert status["connectors"][0]["limit"]["source"] == "profile"


async def test_offline_fallback_set_by_the_backend_as_keys(tmp_path: Path, short_dir: Path):
    """No fallback in the config: the backend sets ChargerfwOfflineLimitA/AfterS, and the
    station falls to that limit once the link is gone; a bad value changes nothing."""
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        sock = short_dir / "control.sock"
        async with running_station(config, sock):
            await csms.wait_for(lambda: csms.of("StatusNotification"))
            for key, value, status in [("ChargerfwOfflineLimitA", "6.55", "Rejected"),
                                       ("ChargerfwOfflineLimitA", "7.5", "Accepted"),
                                       ("ChargerfwOfflineAfterS", "1", "Accepted")]:
                reply = await csms.send_raw(json.dumps([2, f"cc-{value}", "ChangeConfiguration",
                                                        {"key": key, "value": value}]),
                                            f"cc-{value}")
                assert reply[2] == {"status": status}
            assert await set_profile(csms, 1, DEFAULT_10A) == "Accepted"
            await wait_status(sock, lambda s: s["connectors"][0]["current_limit_a"] == 10.0)
            await csms.stop()
            await csms.drop_connections()
            status = await wait_status(sock, lambda s: s["connectors"][0]["limit"]["source"]
                                       == "offline_fallback")
            assert status["connectors"][0]["current_limit_a"] == 7.5


@pytest.mark.parametrize(("follow_delay_s", "trips"), [(0.8, False), (600.0, True)],
                         ids=["vehicle follows in time", "vehicle never follows"])
async def test_over_current_interlock_gives_the_vehicle_time_to_follow_a_lower_profile(
        tmp_path: Path, short_dir: Path, follow_delay_s: float, trips: bool):
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        sock = short_dir / "control.sock"
        safety = SafetySettings(poll_interval_s=0.05, over_current=OverCurrentSettings(
            persist_s=0.5, follow_time_s=2.0, max_sample_age_s=3.0))
        async with running_station(config, sock, safety) as runtime:
            assert runtime.board is not None
            simulated = runtime.board.connectors[1].sim
            assert simulated is not None
            simulated.vehicle.follow_delay_s = follow_delay_s
            await csms.wait_for(lambda: csms.of("StatusNotification"))
            await ctl(sock, "sim.tap", uid="04A1B2C3")
            await ctl(sock, "sim.plug")
            await csms.wait_for(lambda: csms.of("StartTransaction"))
            await ctl(sock, "sim.charge")
            await wait_until(lambda: simulated.vehicle.current_a == 32.0, what="drawing 32 A")

            assert await set_profile(csms, 1, {**DEFAULT_10A, "chargingSchedule": {
                "chargingRateUnit": "A", "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 8}]}}) == "Accepted"
            await wait_until(lambda: simulated.vehicle.offered_current_a == pytest.approx(8),
                             what="the pilot offers 8 A")
            if trips:
                # Still 32 A after the follow time: the interlock opens the contactor.
                await wait_status(sock, lambda s: "over_current" in [
                    f["kind"] for f in s["faults"]] and s["connectors"][0]["status"] == "Faulted",
                    timeout=10)
                await wait_until(lambda: not simulated.contactor.is_closed,
                                 what="contactor open")
            else:
                await wait_until(lambda: simulated.vehicle.current_a == 8.0,
                                 what="the vehicle follows")
                # Past the follow time and the persistence: still charging, nothing tripped.
                await asyncio.sleep(2.0 + 0.5 + 1.0)
                status = await ctl(sock, "status")
                assert "over_current" not in [f["kind"] for f in status["faults"]]
                assert status["connectors"][0]["status"] == "Charging"
                assert simulated.contactor.is_closed
