"""Runtime behaviour across restarts and at the wire: ChangeAvailability persisted, the
Temperature measurand in MeterValues, a lost reader in the fault history, and meterStart taken
from a fresh meter sample. The runtime in-process on simulated hardware, the test CSMS on
loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fakes import wait_until
from ocpp.v16 import call
from ocpp_testcsms import TestCsms
from runtime_helpers import (
    ctl,
    dump_toml,
    running_station,
    sim_station_config,
    wait_status,
)

from chargerfw.config import StationConfig, parse_config
from chargerfw.drivers.types import PilotMode
from chargerfw.sim.meter import SimFault
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(60)

TAG = "04A1B2C3"


def statuses(csms: TestCsms, connector_id: int = 1) -> list[str]:
    return [r.payload["status"] for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id]


def with_meter_timeout(path: Path, timeout_s: float) -> StationConfig:
    raw = tomllib.loads(path.read_text())
    raw["connector"][0]["meter"]["timeout_s"] = timeout_s
    path.write_text(dump_toml(raw))
    return parse_config(tomllib.loads(path.read_text()), str(path))


async def test_change_availability_survives_a_restart(tmp_path: Path, short_dir: Path):
    sock = short_dir / "control.sock"
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        async with running_station(config, sock):
            await csms.wait_for(lambda: statuses(csms))
            result = await csms.server_side.call(
                call.ChangeAvailability(connector_id=1, type="Inoperative"))
            assert result.status == "Accepted"
            await csms.wait_for(lambda: statuses(csms)[-1] == "Unavailable")

        csms.received.clear()  # what the restarted station says
        async with running_station(config, sock) as runtime:
            await csms.wait_for(lambda: statuses(csms) and statuses(csms, 0))
            assert statuses(csms) == ["Unavailable"]  # never Available first
            assert statuses(csms, 0) == ["Available"]  # only connector 1 was changed
            assert runtime.board.connectors[1].pilot.output is PilotMode.STATE_F
            await ctl(sock, "sim.tap", uid=TAG)  # Inoperative: a card starts nothing
            await ctl(sock, "sim.plug")
            await asyncio.sleep(0.3)
            assert runtime.connector_state(1).phase.value == "idle"
            # The whole station Operative again: persisted for every connector.
            result = await csms.server_side.call(
                call.ChangeAvailability(connector_id=0, type="Operative"))
            assert result.status == "Accepted"
            assert runtime.store.availability_all() == {0: True, 1: True}
            result = await csms.server_side.call(
                call.ChangeAvailability(connector_id=0, type="Inoperative"))
            await csms.wait_for(lambda: statuses(csms, 0)[-1] == "Unavailable")

        csms.received.clear()
        async with running_station(config, sock):
            await csms.wait_for(lambda: statuses(csms) and statuses(csms, 0))
            assert statuses(csms, 0) == ["Unavailable"] and statuses(csms) == ["Unavailable"]

    with Store(config.storage.path) as store:  # bad input changes nothing
        with pytest.raises(ValueError):
            store.availability_set({1: True, 2: "yes"})  # type: ignore[dict-item]
        assert store.availability_all() == {0: False, 1: False}


async def start_session(sock: Path, csms: TestCsms) -> None:
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("Authorize"))
    await ctl(sock, "sim.plug")
    await ctl(sock, "sim.charge")
    await csms.wait_for(lambda: csms.of("StartTransaction"))


def sampled(csms: TestCsms, measurand: str) -> list[dict[str, Any]]:
    return [v for r in csms.of("MeterValues") for mv in r.payload["meterValue"]
            for v in mv["sampledValue"] if v.get("measurand") == measurand]


async def test_meter_values_carry_the_connector_temperature(tmp_path: Path, short_dir: Path):
    sock = short_dir / "control.sock"
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url, keys={
            "MeterValuesSampledData": "Energy.Active.Import.Register,Temperature"})
        async with running_station(config, sock):
            await csms.wait_for(lambda: statuses(csms))
            await ctl(sock, "sim.temperature", celsius=41.5)
            await wait_status(sock, lambda s: s["connectors"][0]["temperature_c"] == 41.5)
            await start_session(sock, csms)
            await csms.wait_for(lambda: sampled(csms, "Temperature"), timeout=10)
    value = sampled(csms, "Temperature")[0]
    assert value["value"] == "41.5" and value["unit"] == "Celsius"
    assert value["location"] == "Body" and value["context"] == "Sample.Periodic"
    assert sampled(csms, "Energy.Active.Import.Register")


async def test_lost_reader_is_in_the_fault_history(tmp_path: Path, short_dir: Path):
    sock = short_dir / "control.sock"
    env = {**os.environ, "CHARGERFW_RUNTIME_DIR": str(short_dir)}

    async def faults_cli(*args: str) -> list[dict[str, Any]]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargerfw", "faults", *args, "--json", "-c", str(config_path),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode == 0, err.decode()
        return json.loads(out)

    async with TestCsms() as csms:
        config_path, config = sim_station_config(tmp_path, csms.url)
        async with running_station(config, sock) as runtime:
            await csms.wait_for(lambda: statuses(csms))
            await ctl(sock, "sim.reader_unplug")
            await wait_until(lambda: runtime.store.faults(active_only=True), what="fault stored")
            active = await faults_cli("--active")
            assert [(f["code"], f["connector_id"], f["needs_technician"]) for f in active] == [
                ("reader_failure", 0, False)]
            assert "lost" in active[0]["detail"]
            await ctl(sock, "sim.reader_replug")
            await wait_until(lambda: not runtime.store.faults(active_only=True),
                             what="fault cleared")
            history = await faults_cli()
            assert [f["code"] for f in history] == ["reader_failure"]
            assert history[0]["cleared_at"] is not None


async def test_meter_start_waits_for_a_fresh_sample(tmp_path: Path, short_dir: Path):
    sock = short_dir / "control.sock"
    async with TestCsms() as csms:
        path, _ = sim_station_config(tmp_path, csms.url)
        config = with_meter_timeout(path, 0.3)
        async with running_station(config, sock) as runtime:
            await csms.wait_for(lambda: statuses(csms))
            controller = runtime.controllers[1]
            meter = runtime.sim.loads[1].meter
            await wait_until(lambda: controller.latest_sample, what="first sample")
            # The meter falls silent; what we last heard of it is old.
            meter.inject(SimFault.NO_REPLY)
            await asyncio.sleep(0.4)
            stale = controller.latest_sample
            controller.latest_sample = dataclasses.replace(stale, timestamp=time.time() - 30)
            meter.set_energy(import_wh=stale.energy_import_wh + 1000)
            await ctl(sock, "sim.tap", uid=TAG)
            await ctl(sock, "sim.plug")
            await wait_until(lambda: controller.starting, what="start waiting for the meter")
            assert not csms.of("StartTransaction")
            meter.clear(SimFault.NO_REPLY)  # it answers again within the wait
            await csms.wait_for(lambda: csms.of("StartTransaction"), timeout=5)
            start = csms.of("StartTransaction")[0].payload
            # The register after the outage (float32 kWh on the wire: within 1 Wh), not the
            # stale reading from before it.
            assert abs(start["meterStart"] - (stale.energy_import_wh + 1000)) <= 1
            assert runtime.store.open_transactions()[0].meter_start_wh == start["meterStart"]


def ours(csms: TestCsms) -> list[dict[str, Any]]:
    """StartTransactions of this session (the outbox also delivers the earlier one)."""
    return [r.payload for r in csms.of("StartTransaction") if r.payload["idTag"] == TAG]


async def test_meter_start_without_a_fresh_sample_uses_the_persisted_reading(
        tmp_path: Path, short_dir: Path):
    sock = short_dir / "control.sock"
    async with TestCsms() as csms:
        path, _ = sim_station_config(tmp_path, csms.url)
        config = with_meter_timeout(path, 0.2)
        with Store(config.storage.path) as store:  # an earlier session ended at 5000 Wh
            record = store.start_transaction(1, "OLD", 4000, started_at=time.time() - 600)
            store.stop_transaction(record.local_id, 5000, time.time() - 300, "Local")
        events: list[tuple[str, dict[str, Any]]] = []
        async with running_station(config, sock) as runtime:
            runtime.event_listeners.append(lambda e, f: events.append((e, f)))
            await csms.wait_for(lambda: statuses(csms))
            controller = runtime.controllers[1]
            runtime.sim.loads[1].meter.inject(SimFault.NO_REPLY)
            await asyncio.sleep(0.3)
            controller.latest_sample = None  # as if the meter never answered since boot
            await ctl(sock, "sim.tap", uid=TAG)
            await ctl(sock, "sim.plug")
            await wait_until(lambda: controller.starting, what="start waiting for the meter")
            waited_from = time.monotonic()
            await csms.wait_for(lambda: ours(csms), timeout=5)
            waited = time.monotonic() - waited_from
    start = ours(csms)[0]
    assert start["meterStart"] == 5000  # not 0, not a made-up value
    assert waited <= controller.fresh_sample_wait_s + 0.5  # bounded
    warned = [f for e, f in events if e == "transaction.meter_start_not_fresh"]
    assert warned and warned[0]["persisted_wh"] == 5000


def _expiry_in(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


async def test_reservations_survive_a_restart_and_expired_ones_are_dropped(
        tmp_path: Path, short_dir: Path):
    sock = short_dir / "control.sock"
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        async with running_station(config, sock):
            await csms.wait_for(lambda: statuses(csms))
            result = await csms.server_side.call(call.ReserveNow(
                connector_id=1, expiry_date=_expiry_in(120), id_tag="RES1",
                reservation_id=41, parent_id_tag="GROUP"))
            assert result.status == "Accepted"
            await csms.wait_for(lambda: statuses(csms)[-1] == "Reserved")

        csms.received.clear()
        async with running_station(config, sock) as runtime:
            await csms.wait_for(lambda: statuses(csms))
            assert statuses(csms) == ["Reserved"]  # never Available first
            reservation = runtime.connector_state(1).reservation
            assert (reservation.reservation_id, reservation.id_tag,
                    reservation.parent_id_tag) == (41, "RES1", "GROUP")
            # The same id can be cancelled after the restart; then it is gone from the store.
            result = await csms.server_side.call(call.CancelReservation(reservation_id=41))
            assert result.status == "Accepted"
            assert runtime.store.reservations_all() == []
            result = await csms.server_side.call(call.ReserveNow(
                connector_id=1, expiry_date=_expiry_in(2), id_tag="RES2", reservation_id=42))
            assert result.status == "Accepted"

        await asyncio.sleep(2.5)  # it expires while the station is down
        csms.received.clear()
        async with running_station(config, sock) as runtime:
            await csms.wait_for(lambda: statuses(csms))
            assert statuses(csms) == ["Available"]
            assert runtime.connector_state(1).reservation is None
            assert runtime.store.reservations_all() == []


async def test_the_simulated_meter_keeps_its_exact_register_across_a_restart(
        tmp_path: Path, short_dir: Path):
    """As a real meter does: a restarted station reads the register where it was (1234.56 Wh),
    not the whole Wh its store saw last, so no reading goes backwards between sessions."""
    sock = short_dir / "control.sock"
    async with TestCsms() as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        async with running_station(config, sock) as runtime:
            runtime.sim.loads[1].meter.set_energy(import_wh=1234.56)
            controller = runtime.controllers[1]
            await wait_until(lambda: controller.latest_sample
                             and controller.latest_sample.energy_import_wh == 1234.56,
                             what="the meter read at 1234.56 Wh")
        async with running_station(config, sock) as runtime:
            assert runtime.sim.loads[1].meter.energy_import_wh == 1234.56
            await wait_until(lambda: runtime.client.online, what="online again")
            await ctl(sock, "sim.tap", uid=TAG)
            await ctl(sock, "sim.plug")
            await csms.wait_for(lambda: ours(csms), timeout=10)
    assert ours(csms)[0]["meterStart"] == 1235  # the one rounding rule: to the nearest Wh
