"""Smart Charging in the running station: profiles survive a SIGKILL and apply before the
backend is back, and the offline fallback limit takes over while the backend is unreachable."""

from __future__ import annotations

import json
import signal
import tomllib
from pathlib import Path

import pytest
from ocpp_testcsms import TestCsms
from runtime_helpers import (
    StationProcess,
    running_station,
    sim_station_config,
    wait_status,
)

from chargerfw.config import parse_config

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
