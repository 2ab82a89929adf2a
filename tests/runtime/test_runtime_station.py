"""The station runtime in-process on simulated hardware against the test CSMS (loopback):
a whole session driven through the control socket, remote start/stop, scheduled availability,
and every safety interlock end to end (contactor open, Faulted with the matching error code at
the backend)."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes import wait_until
from ocpp.v16 import call
from ocpp_testcsms import TestCsms
from runtime_helpers import ctl, running_station, sim_station_config, wait_status

from chargerfw import __version__, control
from chargerfw.runtime.station import StationRuntime
from chargerfw.sim.hardware import simulated_hardware
from chargerfw.station.metering import OverCurrentSettings
from chargerfw.station.safety import SafetySettings
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)

TAG = "04A1B2C3"


@pytest.fixture
async def csms() -> AsyncIterator[TestCsms]:
    async with TestCsms() as server:
        yield server


@pytest.fixture
async def station(tmp_path: Path, short_dir: Path,
                  csms: TestCsms) -> AsyncIterator[tuple[StationRuntime, Path]]:
    _, config = sim_station_config(tmp_path, csms.url)
    sock = short_dir / "control.sock"
    async with running_station(config, sock) as runtime:
        await csms.wait_for(lambda: statuses(csms))  # booted, connector 1 reported
        yield runtime, sock


def statuses(csms: TestCsms, connector_id: int = 1) -> list[tuple[str, str]]:
    """(status, errorCode) of every StatusNotification about the connector, oldest first."""
    return [(r.payload["status"], r.payload["errorCode"]) for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id]


def last_status(csms: TestCsms, connector_id: int = 1) -> tuple[str, str] | None:
    reported = statuses(csms, connector_id)
    return reported[-1] if reported else None


def contactor_closed(runtime: StationRuntime) -> bool:
    assert runtime.board is not None
    devices = runtime.board.connectors[1]
    assert devices.sim is not None
    return devices.contactor.commanded_closed and devices.sim.contactor.is_closed


async def start_charging(runtime: StationRuntime, sock: Path, csms: TestCsms) -> None:
    """Tap, plug in, ask to charge; wait until the contactor is closed and power flows."""
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("Authorize"))
    await ctl(sock, "sim.plug")
    await csms.wait_for(lambda: csms.of("StartTransaction"))
    await ctl(sock, "sim.charge")
    await wait_until(lambda: contactor_closed(runtime), what="contactor closed")
    await csms.wait_for(lambda: ("Charging", "NoError") in statuses(csms))


async def test_tap_plug_charge_meter_values_and_stop_by_tap(station, csms):
    runtime, sock = station
    status = await ctl(sock, "status")
    assert status["station"] == "CP1" and status["hardware"] == "sim"
    assert status["connectors"][0]["status"] == "Available"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660

    await start_charging(runtime, sock, csms)
    assert csms.of("Authorize")[0].payload == {"idTag": TAG}
    start = csms.of("StartTransaction")[0].payload
    assert (start["connectorId"], start["idTag"]) == (1, TAG)

    # Meter values flow with the backend's transaction id, energy rising.
    await csms.wait_for(lambda: len(csms.of("MeterValues")) >= 2, timeout=10)
    meter_values = csms.of("MeterValues")
    assert {m.payload["transactionId"] for m in meter_values} == {1000}
    energy = [float(m.payload["meterValue"][0]["sampledValue"][0]["value"]) for m in meter_values]
    assert energy == sorted(energy) and energy[-1] > start["meterStart"]

    status = await wait_status(sock, lambda s: s["connectors"][0]["transaction"]
                               and s["connectors"][0]["transaction"]["transaction_id"] == 1000)
    connector = status["connectors"][0]
    assert connector["status"] == "Charging" and connector["pilot"] == "C"
    assert connector["contactor_closed"] and connector["current_limit_a"] == 32.0
    assert connector["transaction"]["id_tag"] == TAG
    assert connector["meter"]["power_w"] == pytest.approx(32 * 230 * 3)
    assert status["backend"]["online"] is True

    # The same card again stops the session (reason Local) and opens the contactor.
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    stop = csms.of("StopTransaction")[0].payload
    assert (stop["transactionId"], stop["reason"], stop["idTag"]) == (1000, "Local", TAG)
    assert stop["meterStop"] >= energy[-1]
    assert not runtime.board.connectors[1].contactor.commanded_closed
    await csms.wait_for(lambda: ("Finishing", "NoError") in statuses(csms))
    await ctl(sock, "sim.unplug")
    await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"))
    assert len(csms.of("StartTransaction")) == 1 and len(csms.of("StopTransaction")) == 1


async def test_a_different_card_does_not_stop_the_session(station, csms):
    runtime, sock = station
    await start_charging(runtime, sock, csms)
    await ctl(sock, "sim.tap", uid="04FFEE")  # no parentIdTag in common
    await asyncio.sleep(0.5)
    assert not csms.of("StopTransaction") and contactor_closed(runtime)


async def test_remote_start_and_remote_stop(station, csms):
    runtime, sock = station
    result = await csms.server_side.call(call.RemoteStartTransaction(id_tag="REMOTE1",
                                                                     connector_id=1))
    assert result.status == "Accepted"
    await ctl(sock, "sim.plug")
    await csms.wait_for(lambda: csms.of("StartTransaction"))
    assert csms.of("StartTransaction")[0].payload["idTag"] == "REMOTE1"
    await ctl(sock, "sim.charge")
    await wait_until(lambda: contactor_closed(runtime), what="contactor closed")
    await wait_until(lambda: runtime.controllers[1].transaction.backend_tx_id == 1000)

    wrong = await csms.server_side.call(call.RemoteStopTransaction(transaction_id=999))
    assert wrong.status == "Rejected"
    result = await csms.server_side.call(call.RemoteStopTransaction(transaction_id=1000))
    assert result.status == "Accepted"
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    assert csms.of("StopTransaction")[0].payload["reason"] == "Remote"
    assert not runtime.board.connectors[1].contactor.commanded_closed


async def test_change_availability_is_scheduled_while_charging(station, csms):
    runtime, sock = station
    await start_charging(runtime, sock, csms)
    result = await csms.server_side.call(call.ChangeAvailability(connector_id=1,
                                                                 type="Inoperative"))
    assert result.status == "Scheduled"
    assert contactor_closed(runtime)  # the session goes on
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    await csms.wait_for(lambda: last_status(csms) == ("Unavailable", "NoError"))
    # Inoperative: a card starts nothing.
    await ctl(sock, "sim.tap", uid="04BEEF")
    await asyncio.sleep(0.4)
    assert len(csms.of("StartTransaction")) == 1
    result = await csms.server_side.call(call.ChangeAvailability(connector_id=1, type="Operative"))
    assert result.status == "Accepted"
    await csms.wait_for(lambda: (last_status(csms) or ('',))[0] in ("Preparing", "Finishing"))


async def test_unlock_connector_stops_the_session(station, csms):
    runtime, sock = station
    await start_charging(runtime, sock, csms)
    result = await csms.server_side.call(call.UnlockConnector(connector_id=1))
    assert result.status == "Unlocked"
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    assert csms.of("StopTransaction")[0].payload["reason"] == "UnlockCommand"
    assert not runtime.board.connectors[1].sim.lock.is_locked


async def test_authorization_times_out_without_a_vehicle(tmp_path, short_dir, csms):
    _, config = sim_station_config(tmp_path, csms.url, keys={"ConnectionTimeOut": "1"})
    sock = short_dir / "control.sock"
    async with running_station(config, sock) as runtime:
        await csms.wait_for(lambda: statuses(csms))  # online: the tap is authorized, not offline
        await ctl(sock, "sim.tap", uid=TAG)
        await csms.wait_for(lambda: ("Preparing", "NoError") in statuses(csms))
        await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"), timeout=5)
        await ctl(sock, "sim.plug")
        await asyncio.sleep(0.5)
        assert not csms.of("StartTransaction")
        assert runtime.controllers[1].phase.value == "idle"


# -- safety interlocks ------------------------------------------------------------------------

INTERLOCKS = [
    # (what the hardware does, error code at the backend, vendor code, fault kind, stop reason)
    (("sim.rcd_trip", {}), "GroundFailure", "RcdTrip", "rcd_trip", "Other"),
    (("sim.estop_press", {}), "OtherError", "EmergencyStop", "emergency_stop", "EmergencyStop"),
    (("sim.short_pilot", {}), "EVCommunicationError", "PilotError", "pilot_error", "Other"),
    (("sim.remove_diode", {}), "EVCommunicationError", "DiodeFault", "diode_fault", "Other"),
    (("sim.temperature", {"celsius": 80.0}), "HighTemperature", "OverTemperature",
     "over_temperature", None),
    (("sim.fail_to_close", {}), "PowerSwitchFailure", "ContactorFailedToClose",
     "contactor_failed_to_close", "Other"),
    (("sim.overdraw", {"amps": 10.0}), "OverCurrentFailure", "OverCurrent", "over_current",
     "Other"),
]


@pytest.mark.parametrize(("trigger", "error_code", "vendor_code", "kind", "stop_reason"),
                         INTERLOCKS, ids=[t[0][0] for t in INTERLOCKS])
async def test_interlock_opens_contactor_and_reports_faulted(
        tmp_path, short_dir, csms, trigger, error_code, vendor_code, kind, stop_reason):
    _, config = sim_station_config(tmp_path, csms.url)
    sock = short_dir / "control.sock"
    safety = SafetySettings(poll_interval_s=0.05, over_current=OverCurrentSettings(
        persist_s=0.5, follow_time_s=0.5, max_sample_age_s=3.0))
    async with running_station(config, sock, safety) as runtime:
        await csms.wait_for(lambda: statuses(csms))
        await start_charging(runtime, sock, csms)
        method, params = trigger
        await ctl(sock, method, **params)
        await wait_until(lambda: not runtime.board.connectors[1].contactor.commanded_closed,
                         timeout=8, what="contactor open")
        await csms.wait_for(lambda: ("Faulted", error_code) in statuses(csms), timeout=8)
        faulted = [r.payload for r in csms.of("StatusNotification")
                   if r.payload["status"] == "Faulted"][0]
        assert faulted["vendorErrorCode"] == vendor_code
        status = await ctl(sock, "status")
        assert kind in [f["kind"] for f in status["faults"]]
        assert status["connectors"][0]["status"] == "Faulted"
        if stop_reason is None:
            assert not csms.of("StopTransaction")  # over-temperature pauses, does not end
        else:
            await csms.wait_for(lambda: csms.of("StopTransaction"))
            assert csms.of("StopTransaction")[0].payload["reason"] == stop_reason
        assert not runtime.board.connectors[1].sim.contactor.is_closed


async def test_fault_clears_on_release_and_the_station_is_available_again(station, csms):
    runtime, sock = station
    await ctl(sock, "sim.estop_press")
    await csms.wait_for(lambda: ("Faulted", "OtherError") in statuses(csms))
    await ctl(sock, "sim.estop_release")
    await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"))
    faults = await ctl(sock, "faults", history=True)
    assert faults["active"] == []
    assert [h["code"] for h in faults["history"]] == ["emergency_stop"]
    assert faults["history"][0]["cleared_at"] is not None


async def test_welded_contactor_blocks_new_sessions_until_cleared(station, csms):
    runtime, sock = station
    await start_charging(runtime, sock, csms)
    await ctl(sock, "sim.weld")
    await ctl(sock, "sim.tap", uid=TAG)  # stop: the contactor is told to open but stays closed
    await csms.wait_for(lambda: ("Faulted", "PowerSwitchFailure") in statuses(csms))
    stop = csms.of("StopTransaction")[0].payload
    assert stop["reason"] == "Local"

    # While it is still welded a technician cannot clear it.
    with pytest.raises(control.ControlError) as refused:
        await ctl(sock, "fault.clear", kind="contactor_welded", connector=1)
    assert refused.value.code == control.REFUSED and "still present" in refused.value.message
    await ctl(sock, "sim.repair")
    await ctl(sock, "sim.unplug")
    await asyncio.sleep(0.5)
    # Repaired and unplugged, it stays latched: a new card starts nothing.
    await ctl(sock, "sim.plug")
    await ctl(sock, "sim.tap", uid=TAG)
    await asyncio.sleep(0.5)
    assert len(csms.of("StartTransaction")) == 1
    assert (await ctl(sock, "status"))["connectors"][0]["status"] == "Faulted"

    assert await ctl(sock, "fault.clear", kind="contactor_welded", connector=1) == {
        "cleared": "contactor_welded", "connector": 1}
    await csms.wait_for(lambda: last_status(csms) == ("Preparing", "NoError"))
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: len(csms.of("StartTransaction")) == 2)


async def test_welded_fault_survives_a_restart(tmp_path, short_dir, csms):
    _, config = sim_station_config(tmp_path, csms.url)
    sock = short_dir / "control.sock"
    async with running_station(config, sock) as runtime:
        await csms.wait_for(lambda: statuses(csms))
        await start_charging(runtime, sock, csms)
        await ctl(sock, "sim.weld")
        await ctl(sock, "sim.tap", uid=TAG)
        await csms.wait_for(lambda: ("Faulted", "PowerSwitchFailure") in statuses(csms))
    csms.received.clear()
    async with running_station(config, sock):
        await csms.wait_for(lambda: ("Faulted", "PowerSwitchFailure") in statuses(csms))
        status = await ctl(sock, "status")
        assert [f["kind"] for f in status["faults"]] == ["contactor_welded"]


# -- the control channel ----------------------------------------------------------------------

async def test_control_channel_errors_are_typed(station):
    runtime, sock = station
    with pytest.raises(control.ControlError) as unknown:
        await ctl(sock, "no.such.method")
    assert unknown.value.code == control.METHOD_NOT_FOUND
    with pytest.raises(control.ControlError) as bad_param:
        await ctl(sock, "sim.plug", connector=7)
    assert bad_param.value.code == control.INVALID_PARAMS and "connector 7" in bad_param.value.message
    with pytest.raises(control.ControlError) as extra:
        await ctl(sock, "status", verbose=True)
    assert extra.value.code == control.INVALID_PARAMS
    with pytest.raises(control.ControlError) as bad_kind:
        await ctl(sock, "fault.clear", kind="gremlins")
    assert bad_kind.value.code == control.INVALID_PARAMS
    with pytest.raises(control.ControlError) as not_active:
        await ctl(sock, "fault.clear", kind="rcd_trip")
    assert not_active.value.code == control.REFUSED
    with pytest.raises(control.ControlError) as bad_uid:
        await ctl(sock, "sim.tap", uid="not-hex")
    assert bad_uid.value.code == control.INVALID_PARAMS

    reader, writer = await asyncio.open_unix_connection(str(sock))
    writer.write(b'not json\n{"id": 5, "params": {}}\n[1]\n{"id": 6, "method": "faults"}\n')
    await writer.drain()
    replies = [await reader.readline() for _ in range(4)]
    writer.close()
    import json
    decoded = [json.loads(r) for r in replies]
    assert [d.get("error", {}).get("code") for d in decoded[:3]] == [
        control.PARSE_ERROR, control.INVALID_REQUEST, control.INVALID_REQUEST]
    assert decoded[3] == {"id": 6, "result": {"active": []}}
    # Nothing of that changed the station.
    assert (await ctl(sock, "status"))["connectors"][0]["status"] == "Available"


async def test_call_without_a_station_says_so(short_dir):
    with pytest.raises(control.ControlUnavailable):
        await ctl(short_dir / "control.sock", "status")


@pytest.mark.parametrize(("kind", "reason", "outcome"), [
    ("Soft", "SoftReset", "soft_reset"), ("Hard", "HardReset", "hard_reset")])
async def test_reset_stops_the_session_and_ends_the_run(tmp_path, short_dir, csms, kind, reason,
                                                        outcome):
    _, config = sim_station_config(tmp_path, csms.url)
    sock = short_dir / "control.sock"
    runtime = StationRuntime(config, control_socket=sock, shutdown_flush_s=1.0,
                             simulator=simulated_hardware)
    task = asyncio.create_task(runtime.run())
    try:
        await asyncio.wait_for(runtime.ready.wait(), 10)
        await csms.wait_for(lambda: statuses(csms))
        await start_charging(runtime, sock, csms)
        result = await csms.server_side.call(call.Reset(type=kind))
        assert result.status == "Accepted"
        assert (await asyncio.wait_for(task, 10)).value == outcome
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 10)
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    assert [s.payload["reason"] for s in csms.of("StopTransaction")] == [reason]
    assert not runtime.board.connectors[1].contactor.commanded_closed
    assert not sock.exists()  # the control socket is gone with the runtime
    with Store(config.storage.path) as store:  # the security log has both
        assert [(e.type, e.tech_info) for e in store.security_events()][-2:] == [
            ("StartupOfTheDevice", f"chargerfw {__version__}"), ("ResetOrReboot", f"{kind} reset")]


def _in(seconds: float) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


async def test_reserve_now_refuses_others_and_expires(station, csms):
    runtime, sock = station
    cp = csms.server_side
    assert (await cp.call(call.ReserveNow(connector_id=0, expiry_date=_in(60), id_tag="RES1",
                                          reservation_id=6))).status == "Rejected"
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=_in(-5), id_tag="RES1",
                                          reservation_id=6))).status == "Rejected"
    result = await cp.call(call.ReserveNow(connector_id=1, expiry_date=_in(1.5), id_tag="RES1",
                                           reservation_id=7))
    assert result.status == "Accepted"
    await csms.wait_for(lambda: last_status(csms) == ("Reserved", "NoError"))
    status = await ctl(sock, "status")
    assert status["connectors"][0]["reservation"] == {"reservation_id": 7, "id_tag": "RES1"}
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=_in(60), id_tag="RES2",
                                          reservation_id=8))).status == "Occupied"
    await ctl(sock, "sim.tap", uid="04BADBAD")  # someone else's card starts nothing
    await asyncio.sleep(0.3)
    assert runtime.controllers[1].phase.value == "idle"
    assert (await cp.call(call.CancelReservation(reservation_id=99))).status == "Rejected"
    # It ends by itself at its expiry.
    await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"), timeout=5)
    assert (await ctl(sock, "status"))["connectors"][0]["reservation"] is None


async def test_reserved_connector_starts_for_its_tag_with_the_reservation_id(station, csms):
    runtime, sock = station
    cp = csms.server_side
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=_in(60), id_tag=TAG,
                                          reservation_id=11))).status == "Accepted"
    await csms.wait_for(lambda: last_status(csms) == ("Reserved", "NoError"))
    await start_charging(runtime, sock, csms)
    assert csms.of("StartTransaction")[0].payload["reservationId"] == 11
    assert (await cp.call(call.CancelReservation(reservation_id=11))).status == "Rejected"


async def test_cancel_reservation(station, csms):
    runtime, sock = station
    cp = csms.server_side
    assert (await cp.call(call.ReserveNow(connector_id=1, expiry_date=_in(60), id_tag="RES1",
                                          reservation_id=3))).status == "Accepted"
    await csms.wait_for(lambda: last_status(csms) == ("Reserved", "NoError"))
    assert (await cp.call(call.CancelReservation(reservation_id=3))).status == "Accepted"
    await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"))


async def test_unplugging_while_charging_ends_the_session(station, csms):
    runtime, sock = station
    await start_charging(runtime, sock, csms)
    await ctl(sock, "sim.unplug")
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    assert csms.of("StopTransaction")[0].payload["reason"] == "EVDisconnected"
    assert not runtime.board.connectors[1].contactor.commanded_closed
    await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"))


async def test_meter_values_carry_the_offered_current_and_power(tmp_path, short_dir, csms):
    measurands = "Energy.Active.Import.Register,Current.Offered,Power.Offered"
    _, config = sim_station_config(tmp_path, csms.url,
                                   keys={"MeterValuesSampledData": measurands})
    sock = short_dir / "control.sock"
    async with running_station(config, sock) as runtime:
        await csms.wait_for(lambda: statuses(csms))
        await start_charging(runtime, sock, csms)
        await csms.wait_for(lambda: any(
            len(m.payload["meterValue"][0]["sampledValue"]) == 3 for m in csms.of("MeterValues")),
            timeout=10)
        value = next(m for m in csms.of("MeterValues")
                     if len(m.payload["meterValue"][0]["sampledValue"]) == 3)
        offered = {v["measurand"]: (v["value"], v["unit"])
                   for v in value.payload["meterValue"][0]["sampledValue"]}
        # The simulated connector offers its 32 A rating on three phases at 230 V.
        assert offered["Current.Offered"] == ("32", "A")
        assert offered["Power.Offered"] == ("22080", "W")


def cable_locked(runtime: StationRuntime) -> bool:
    assert runtime.board is not None
    return runtime.board.connectors[1].sim.lock.is_locked


async def test_unplugging_at_the_vehicle_unlocks_the_cable(station, csms):
    runtime, sock = station
    await start_charging(runtime, sock, csms)
    await wait_until(lambda: cable_locked(runtime), what="cable locked")
    await ctl(sock, "sim.unplug")
    await wait_until(lambda: not cable_locked(runtime), what="cable unlocked")


async def test_cable_stays_locked_for_its_tag_when_unlock_on_ev_side_disconnect_is_false(
        tmp_path, short_dir, csms):
    _, config = sim_station_config(tmp_path, csms.url,
                                   keys={"UnlockConnectorOnEVSideDisconnect": "false"})
    sock = short_dir / "control.sock"
    async with running_station(config, sock) as runtime:
        await csms.wait_for(lambda: statuses(csms))
        await start_charging(runtime, sock, csms)
        await ctl(sock, "sim.unplug")
        await csms.wait_for(lambda: csms.of("StopTransaction"))
        assert csms.of("StopTransaction")[0].payload["reason"] == "EVDisconnected"
        await csms.wait_for(lambda: last_status(csms) == ("Finishing", "NoError"))
        assert cable_locked(runtime)
        await ctl(sock, "sim.tap", uid="04FFEE")  # another card neither takes it nor starts
        await asyncio.sleep(0.3)
        assert cable_locked(runtime) and len(csms.of("StartTransaction")) == 1
        await ctl(sock, "sim.tap", uid=TAG)  # its own card releases it
        await wait_until(lambda: not cable_locked(runtime), what="cable released")
        await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"))
        assert len(csms.of("StartTransaction")) == 1


async def test_technician_methods_meter_sample_rfid_next_and_config_set(station, csms):
    runtime, sock = station
    await wait_until(lambda: runtime.controllers[1].latest_sample is not None)
    sample = await ctl(sock, "meter.sample", connector=1)
    assert sample["voltage_l1_v"] == 230.0 and sample["age_s"] < 5
    assert "energy_import_wh" in sample
    with pytest.raises(control.ControlError) as bad:
        await ctl(sock, "meter.sample", connector=9)
    assert bad.value.code == control.INVALID_PARAMS

    waiting = asyncio.create_task(ctl(sock, "rfid.next", wait_s=5))
    await wait_until(lambda: runtime.tap_waiters, what="rfid.next waiting")
    await ctl(sock, "sim.tap", uid="04aa55")
    assert (await waiting)["id_tag"] == "04AA55"
    assert (await ctl(sock, "rfid.next", wait_s=0.2))["id_tag"] is None

    changed = await ctl(sock, "config.set", key="StopTransactionOnInvalidId", value="false")
    assert changed["status"] == "Accepted"
    assert runtime.connector_state(1).settings.stop_on_invalid_id is False
    refused = await ctl(sock, "config.set", key="NumberOfConnectors", value="2")
    assert refused["status"] == "Rejected"
    assert runtime.client.keys.get_int("NumberOfConnectors") == 1


@pytest.mark.parametrize("authorize_first", ["false", "true"])
async def test_a_burst_of_remote_starts_authorizes_a_connector_once_for_connection_timeout(
        tmp_path, short_dir, csms, authorize_first):
    _, config = sim_station_config(tmp_path, csms.url, keys={
        "ConnectionTimeOut": "1", "AuthorizeRemoteTxRequests": authorize_first})
    sock = short_dir / "control.sock"
    async with running_station(config, sock) as runtime:
        await csms.wait_for(lambda: statuses(csms))
        answers = [(await csms.server_side.call(call.RemoteStartTransaction(
            id_tag=f"BURST{i}", connector_id=1))).status for i in range(5)]
        assert answers == ["Accepted"] + ["Rejected"] * 4
        await wait_until(lambda: runtime.connector_state(1).phase.value == "authorized")
        assert runtime.connector_state(1).id_tag == "BURST0"
        # ConnectionTimeOut from the one authorization: nothing of the burst is left after it.
        await wait_until(lambda: runtime.connector_state(1).phase.value == "idle", timeout=5,
                         what="authorization withdrawn after ConnectionTimeOut")
        await csms.wait_for(lambda: last_status(csms) == ("Available", "NoError"))
        await ctl(sock, "sim.plug")
        await asyncio.sleep(0.5)
        assert not csms.of("StartTransaction")
        # The connector takes a remote start again.
        again = await csms.server_side.call(call.RemoteStartTransaction(id_tag="LATER",
                                                                        connector_id=1))
        assert again.status == "Accepted"
        await csms.wait_for(lambda: csms.of("StartTransaction"))
        assert csms.of("StartTransaction")[0].payload["idTag"] == "LATER"
