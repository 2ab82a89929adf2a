"""The service side of the guarded hardware tests (`test.contactor|rcd|pilot|lock` on the
control socket): the runtime in-process on simulated hardware against the test CSMS, the
`chargerfw test ...` CLI as a separate process talking to it, as a technician would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeContactor, wait_until
from ocpp_testcsms import TestCsms
from runtime_helpers import LiveStation, ctl, live_station, wait_status

from chargerfw import control
from chargerfw.drivers.types import PilotMode, PilotState
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FaultKind
from chargerfw.station.safety import (
    SafetySettings,
    SafetySupervisor,
    SupervisedConnector,
)

pytestmark = pytest.mark.timeout(60)

TAG = "04A1B2C3"


Station = LiveStation


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[Station]:
    async with live_station(tmp_path) as live:
        yield live


def statuses(csms: TestCsms, connector_id: int = 1) -> list[str]:
    return [r.payload["status"] for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id]


async def refusal(sock: Path, method: str, **params: Any) -> str:
    with pytest.raises(control.ControlError) as caught:
        await ctl(sock, method, **params)
    assert caught.value.code == control.REFUSED
    return caught.value.message


async def test_each_test_passes_blocks_the_connector_and_restores_it(station: Station):
    runtime, sock, cli, csms = station
    devices = runtime.board.connectors[1]
    pilot_outputs: list[str] = []
    set_f = devices.pilot.set_state_f

    def recording_set_f() -> None:
        pilot_outputs.append("F")
        set_f()
    devices.pilot.set_state_f = recording_set_f  # type: ignore[method-assign]

    code, out, err = await cli("test", "contactor", "--yes", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["via"] == "service" and report["result"] == "ok" and report["passed"]
    assert [(s["step"], s["commanded"], s["feedback"]) for s in report["steps"]] == [
        ("before", "open", "ok"), ("close", "closed", "ok"), ("open", "open", "ok")]
    assert not devices.contactor.commanded_closed and not devices.sim.contactor.is_closed

    # Blocked at the backend for the test, then back to what it was.
    await csms.wait_for(lambda: statuses(csms)[-2:] == ["Unavailable", "Available"])

    code, out, err = await cli("test", "pilot", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] and report["vehicle"] is False
    assert [s["state"] for s in report["steps"]] == ["A", "A", "A", "A", "F"]
    assert pilot_outputs == ["F"]  # the test's state F step only
    assert devices.pilot.output is PilotMode.STANDBY  # the machine's output again
    await wait_status(sock, lambda s: s["connectors"][0]["pilot"] == "A")

    code, out, err = await cli("test", "lock", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] and report["feedback"] is True
    assert [s["result"] for s in report["steps"]] == ["locked", "unlocked"]

    code, out, err = await cli("test", "rcd", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] and report["tripped"] and report["cleared"]
    assert report["faults_raised"] == ["rcd_trip"]

    # More test trips than rcd_trips_to_latch (3): a test is no installation trip.
    for _ in range(2):
        assert (await ctl(sock, "test.rcd"))["passed"]
    await wait_status(sock, lambda s: s["faults"] == [])
    status = await ctl(sock, "status")
    assert status["connectors"][0]["status"] == "Available"
    assert status["connectors"][0]["under_test"] is None
    await csms.wait_for(lambda: statuses(csms)[-1] == "Available")

    # A card works again after the tests.
    await ctl(sock, "sim.tap", uid=TAG)
    await ctl(sock, "sim.plug")
    await csms.wait_for(lambda: csms.of("StartTransaction"))


async def test_a_connector_under_test_takes_no_session(station: Station):
    runtime, sock, _cli, csms = station
    started = asyncio.Event()
    release = asyncio.Event()
    loop = asyncio.get_running_loop()
    original = runtime.board.connectors[1].lock.lock

    def slow_lock():  # runs in the test's thread: hold the test open until told
        loop.call_soon_threadsafe(started.set)
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result(10)
        return original()
    runtime.board.connectors[1].lock.lock = slow_lock

    test = asyncio.create_task(ctl(sock, "test.lock", connector=1))
    await asyncio.wait_for(started.wait(), 10)
    assert runtime.connector_state(1).under_test == "lock"
    status = await ctl(sock, "status")
    assert status["connectors"][0]["under_test"] == "lock"
    assert "lock test is running" in await refusal(sock, "test.contactor")
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("Authorize"))
    await asyncio.sleep(0.2)
    assert runtime.connector_state(1).phase.value == "idle"  # the tap started nothing
    assert statuses(csms)[-1] == "Unavailable"
    release.set()
    assert (await test)["passed"]
    await csms.wait_for(lambda: statuses(csms)[-1] == "Available")


async def test_refusals_vehicle_transaction_and_fault(station: Station):
    runtime, sock, cli, csms = station
    closes: list[str] = []
    contactor = runtime.board.connectors[1].contactor
    close = contactor.close

    def recording_close() -> None:
        closes.append("close")
        close()
    contactor.close = recording_close  # type: ignore[method-assign]

    await ctl(sock, "sim.plug")
    await wait_status(sock, lambda s: s["connectors"][0]["pilot"] == "B")
    code, _, err = await cli("test", "contactor", "--yes")
    assert code == 1 and "refused" in err and "vehicle is connected" in err
    for method in ("test.contactor", "test.pilot", "test.lock"):
        assert "vehicle is connected to connector 1 (pilot B)" in await refusal(
            sock, method, connector=1)

    await ctl(sock, "sim.tap", uid=TAG)
    await ctl(sock, "sim.charge")
    await wait_status(sock, lambda s: s["connectors"][0]["status"] == "Charging")
    closes.clear()  # the session's own close
    for method, params in (("test.contactor", {"connector": 1}), ("test.rcd", {}),
                           ("test.lock", {"connector": 1})):
        assert "a transaction runs on connector 1" in await refusal(sock, method, **params)
    assert contactor.commanded_closed  # the session goes on
    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    await ctl(sock, "sim.unplug")
    await wait_status(sock, lambda s: s["connectors"][0]["status"] == "Available")

    await ctl(sock, "sim.estop_press")
    await wait_status(sock, lambda s: s["faults"])
    assert "emergency_stop" in await refusal(sock, "test.contactor", connector=1)
    assert "emergency_stop" in await refusal(sock, "test.rcd")
    await ctl(sock, "sim.estop_release")
    await wait_status(sock, lambda s: s["faults"] == [])
    assert closes == []  # no refused test energised the contactor

    with pytest.raises(control.ControlError) as caught:
        await ctl(sock, "test.contactor", connector=7)
    assert caught.value.code == control.INVALID_PARAMS and "no connector 7" in caught.value.message


async def test_welded_contactor_found_by_the_test(station: Station):
    runtime, sock, cli, csms = station
    devices = runtime.board.connectors[1]
    mirror = devices.sim.contactor
    close = devices.contactor.close

    def close_and_weld() -> None:  # the contacts weld while the test has them closed
        close()
        mirror.weld()
    devices.contactor.close = close_and_weld  # type: ignore[method-assign]

    code, out, err = await cli("test", "contactor", "--yes", "--json")
    assert code == 1, err
    report = json.loads(out)
    assert report["via"] == "service" and report["result"] == "welded" and not report["passed"]
    assert report["steps"][-1] == {"step": "open", "commanded": "open", "feedback": "welded"}
    assert not devices.contactor.commanded_closed
    # The supervisor latched it like any welded contactor: Faulted, and in the fault history.
    await wait_status(sock, lambda s: [f["kind"] for f in s["faults"]] == ["contactor_welded"])
    await csms.wait_for(lambda: statuses(csms)[-1] == "Faulted")
    assert [(f.code, f.connector_id, f.needs_technician)
            for f in runtime.store.faults(active_only=True)] == [("contactor_welded", 1, True)]

    # Testing again while it is welded: reported from the mirror, never energised.
    devices.contactor.close = lambda: pytest.fail("a welded contactor was energised")
    report = await ctl(sock, "test.contactor", connector=1)
    assert report["result"] == "welded" and not report["passed"] and len(report["steps"]) == 1
    await wait_until(lambda: statuses(csms)[-1] == "Faulted", what="Faulted again")
    assert runtime.connector_state(1).under_test is None


def test_supervisor_test_close_rules():
    contactor = FakeContactor()
    pilot = [PilotState.A]
    supervisor = SafetySupervisor(
        {1: SupervisedConnector(contactor=contactor, read_pilot=lambda: pilot[0])},
        lambda event: None, SafetySettings(rcd_trips_to_latch=2))
    supervisor.poll_once()
    assert not supervisor.request_test_close(1)  # only for a connector under test
    assert not supervisor.request_close(1)  # the normal rule: pilot C/D only

    supervisor.begin_test(1)
    assert supervisor.request_test_close(1)
    supervisor.poll_once()
    assert contactor.commanded_closed  # kept closed with no vehicle, for the test
    pilot[0] = PilotState.B  # a vehicle arrives mid-test
    supervisor.poll_once()
    assert not contactor.commanded_closed
    assert not supervisor.request_test_close(1)  # and no close while it is there
    pilot[0] = PilotState.A
    supervisor.poll_once()
    supervisor.fault_input_changed(FaultKind.EMERGENCY_STOP, True)
    assert not supervisor.request_test_close(1)  # never around an interlock
    supervisor.fault_input_changed(FaultKind.EMERGENCY_STOP, False)
    assert supervisor.request_test_close(1)
    supervisor.end_test(1)
    assert not contactor.commanded_closed  # the end of the test opens it

    # RCM test trips do not latch RCD_TRIP_REPEATED; real ones still do.
    supervisor.begin_test(STATION)
    for _ in range(3):
        supervisor.fault_input_changed(FaultKind.RCD_TRIP, True)
        supervisor.fault_input_changed(FaultKind.RCD_TRIP, False)
    supervisor.end_test(STATION)
    assert not supervisor.active_faults()
    for _ in range(2):
        supervisor.fault_input_changed(FaultKind.RCD_TRIP, True)
        supervisor.fault_input_changed(FaultKind.RCD_TRIP, False)
    assert {f.kind for f in supervisor.active_faults()} == {FaultKind.RCD_TRIP_REPEATED}
