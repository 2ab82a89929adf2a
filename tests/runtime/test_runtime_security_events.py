"""The security events of a running station (simulated hardware, test CSMS on loopback): start-up
and the tamper contact reach the backend as SecurityEventNotifications; invalid and replayed
frames from the backend are logged (and the replay is refused); GetLog(SecurityLog) uploads them
all; the periodic watch records a clock jump and a full disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest
from fakes import wait_until
from ocpp.v16 import call
from ocpp_testcsms import TestCsms
from runtime_helpers import ctl, running_station, sim_station_config
from upload_servers import HttpUploadServer

from chargerfw import __version__
from chargerfw.config.station import FaultInputSection
from chargerfw.runtime.security_watch import SecurityWatch
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)

TAMPER_PIN = 26  # unused by hw/stations/sim.toml


def _notified(csms: TestCsms) -> list[str]:
    return [r.payload["type"] for r in csms.of("SecurityEventNotification")]


async def _ask(csms: TestCsms, uid: str, action: str, payload: dict[str, Any]) -> list[Any]:
    return await csms.send_raw(json.dumps([2, uid, action, payload]), uid)


async def test_tamper_frames_and_the_security_log_upload(tmp_path: Path, short_dir: Path):
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        config = msgspec.structs.replace(config, security=msgspec.structs.replace(
            config.security, tamper=FaultInputSection(pin=TAMPER_PIN)))
        sock = short_dir / "control.sock"
        async with running_station(config, sock) as runtime:
            await csms.wait_for(lambda: "StartupOfTheDevice" in _notified(csms))
            [startup] = csms.of("SecurityEventNotification")
            assert startup.payload["techInfo"] == f"chargerfw {__version__}"

            # The enclosure opens, closes, opens: two events; a second "open" while open, none.
            assert await ctl(sock, "sim.tamper_open") == {"tamper": "open"}
            await csms.wait_for(lambda: _notified(csms).count("TamperDetectionActivated") == 1)
            await ctl(sock, "sim.tamper_open")
            await ctl(sock, "sim.tamper_close")
            await ctl(sock, "sim.tamper_open")
            await csms.wait_for(lambda: _notified(csms).count("TamperDetectionActivated") == 2)

            # A malformed CALL and a replayed one.
            bad = await _ask(csms, "bad-1", "ClearCache", {"unexpected": 1})
            assert bad[:3] == [4, "bad-1", "FormationViolation"]
            first = await _ask(csms, "cc-1", "ClearCache", {})
            assert first[0] == 3
            replayed = await _ask(csms, "cc-1", "ClearCache", {})
            assert replayed[:3] == [4, "cc-1", "SecurityError"]
            logged = [e.type for e in runtime.store.security_events()]
            assert logged.count("InvalidMessages") == 1
            assert logged.count("AttemptedReplayAttacks") == 1
            # Not critical: logged, not pushed (ChargerfwNotifyAllSecurityEvents is false).
            assert "InvalidMessages" not in _notified(csms)

            with HttpUploadServer() as server:
                reply = await _ask(csms, "l1", "GetLog", {
                    "logType": "SecurityLog", "requestId": 7,
                    "log": {"remoteLocation": server.url + "/logs"}})
                assert reply[2]["status"] == "Accepted"
                await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 2)
            uploaded = (server.received[0].file or b"").decode()
            for event in ("StartupOfTheDevice", "TamperDetectionActivated", "InvalidMessages",
                          "AttemptedReplayAttacks"):
                assert event in uploaded
    assert _notified(csms) == ["StartupOfTheDevice", "TamperDetectionActivated",
                               "TamperDetectionActivated"]


def test_the_watch_records_a_clock_jump_and_a_full_disk(tmp_path: Path):
    _, config = sim_station_config(tmp_path, "ws://127.0.0.1:9/ocpp")
    clock = {"wall": 1_800_000_000.0, "mono": 100.0, "free": 10 << 30}
    with Store(config.storage.path) as store:
        watch = SecurityWatch(config, store, wall=lambda: clock["wall"],
                              monotonic=lambda: clock["mono"], disk_free=lambda _: clock["free"])
        watch.poll()
        clock.update(wall=clock["wall"] + 5, mono=clock["mono"] + 5)
        watch.poll()
        assert store.security_events() == []
        clock.update(wall=clock["wall"] + 3600, mono=clock["mono"] + 5, free=1 << 20)
        watch.poll()
        watch.poll()  # still low, still the same jump: nothing new
        assert [(e.type, e.tech_info) for e in store.security_events()] == [
            ("SettingSystemTime", "the system time moved +3595 s"),
            ("MemoryExhaustion", "1024 KiB free on the store's disk (limit 16384 KiB)")]
        assert [m.payload["type"] for m in store.outbox_pending()] == [
            "SettingSystemTime", "MemoryExhaustion"]


async def test_the_reset_event_reaches_the_backend_before_the_restart(tmp_path, short_dir):
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        async with running_station(config, short_dir / "control.sock"):
            await csms.wait_for(lambda: "StartupOfTheDevice" in _notified(csms))
            result = await csms.server_side.call(call.Reset(type="Soft"))
            assert result.status == "Accepted"
            await wait_until(lambda: "ResetOrReboot" in _notified(csms), timeout=10)
    [reset] = [r for r in csms.of("SecurityEventNotification")
               if r.payload["type"] == "ResetOrReboot"]
    assert reset.payload["techInfo"] == "Soft reset"
