"""OCPP 1.6 Smart Charging on the wire: SetChargingProfile, ClearChargingProfile,
GetCompositeSchedule and RemoteStartTransaction with a chargingProfile, exact JSON, against the
real station runtime on simulated hardware (the test CSMS on loopback)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fakes import wait_until
from ocpp_testcsms import TestCsms
from runtime_helpers import ctl, running_station, sim_station_config

from chargerfw.runtime.station import StationRuntime
from chargerfw.station.connector import LimitSource

pytestmark = pytest.mark.timeout(40)

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
        await csms.wait_for(lambda: csms.of("StatusNotification"))
        yield runtime, sock


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def tx_default(pid: int, periods: list[tuple[int, float]], *, level: int = 0,
               unit: str = "A", start: datetime | None = None,
               purpose: str = "TxDefaultProfile") -> dict[str, Any]:
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": [
        {"startPeriod": s, "limit": v} for s, v in periods]}
    if start is not None:
        schedule["startSchedule"] = iso(start)
    return {"chargingProfileId": pid, "stackLevel": level, "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute" if start else "Relative",
            "chargingSchedule": schedule}


class Backend:
    def __init__(self, csms: TestCsms) -> None:
        self.csms = csms
        self.n = 0

    async def ask(self, action: str, payload: dict[str, Any]) -> Any:
        self.n += 1
        uid = f"sc{self.n}"
        reply = await self.csms.send_raw(json.dumps([2, uid, action, payload]), uid)
        return reply[2] if reply[0] == 3 else reply


def smart_limit(runtime: StationRuntime) -> float | None:
    return runtime.core.state.connector(1).limit(LimitSource.SMART_CHARGING)


async def test_set_clear_and_composite_on_the_wire(station, csms):
    runtime, _ = station
    backend = Backend(csms)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)

    # Connector 0, a ChargePointMaxProfile and a TxDefaultProfile; stack level beyond the key.
    assert await backend.ask("SetChargingProfile", {
        "connectorId": 0, "csChargingProfiles": tx_default(
            1, [(0, 20)], start=start, purpose="ChargePointMaxProfile")}) == {"status": "Accepted"}
    assert await backend.ask("SetChargingProfile", {
        "connectorId": 1, "csChargingProfiles": tx_default(
            2, [(0, 16), (3600, 10)], start=start, level=1)}) == {"status": "Accepted"}
    assert await backend.ask("SetChargingProfile", {
        "connectorId": 1, "csChargingProfiles": tx_default(3, [(0, 8)], level=11)}) == {
        "status": "Rejected"}
    # A TxProfile without a transaction, a ChargePointMaxProfile on a connector, an unknown
    # connector, a first period that does not start at 0: Rejected, nothing stored.
    for connector_id, profile in [
            (1, tx_default(4, [(0, 8)], purpose="TxProfile")),
            (1, tx_default(5, [(0, 8)], purpose="ChargePointMaxProfile")),
            (9, tx_default(6, [(0, 8)])),
            (1, tx_default(7, [(60, 8)]))]:
        assert await backend.ask("SetChargingProfile", {
            "connectorId": connector_id, "csChargingProfiles": profile}) == {"status": "Rejected"}
    assert [i.profile.profile_id for i in runtime.store.charging_profiles()] == [1, 2]
    await wait_until(lambda: smart_limit(runtime) == 16.0, what="the TxDefault's 16 A")

    # GetCompositeSchedule, in A and in W (3 phases x 230 V); the period ends 3600 s after start.
    reply = await backend.ask("GetCompositeSchedule", {"connectorId": 1, "duration": 7200})
    assert reply["status"] == "Accepted" and reply["connectorId"] == 1
    begun = datetime.fromisoformat(reply["scheduleStart"])
    change = int((start + timedelta(seconds=3600) - begun).total_seconds())
    assert reply["chargingSchedule"] == {
        "duration": 7200, "startSchedule": reply["scheduleStart"], "chargingRateUnit": "A",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16},
                                   {"startPeriod": change, "limit": 10}]}
    reply = await backend.ask("GetCompositeSchedule", {"connectorId": 0, "duration": 60,
                                                       "chargingRateUnit": "W"})
    assert reply["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 11040}]
    assert await backend.ask("GetCompositeSchedule", {"connectorId": 3, "duration": 60}) == {
        "status": "Rejected"}

    # ClearChargingProfile: Unknown when nothing matches, Accepted when something went.
    assert await backend.ask("ClearChargingProfile", {"id": 42}) == {"status": "Unknown"}
    assert await backend.ask("ClearChargingProfile", {
        "connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 0}) == {
        "status": "Unknown"}
    assert await backend.ask("ClearChargingProfile", {
        "connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1}) == {
        "status": "Accepted"}
    assert [i.profile.profile_id for i in runtime.store.charging_profiles()] == [1]
    await wait_until(lambda: smart_limit(runtime) == 20.0, what="the ChargePointMax's 20 A")
    assert await backend.ask("ClearChargingProfile", {}) == {"status": "Accepted"}
    await wait_until(lambda: smart_limit(runtime) is None, what="no smart-charging limit")
    assert runtime.store.charging_profiles() == ()


async def test_remote_start_with_a_profile(station, csms):
    runtime, sock = station
    backend = Backend(csms)
    devices = runtime.board.connectors[1]
    await ctl(sock, "sim.plug")
    # A profile that is not a TxProfile: the start is refused, nothing starts.
    assert await backend.ask("RemoteStartTransaction", {
        "idTag": TAG, "connectorId": 1, "chargingProfile": tx_default(8, [(0, 8)])}) == {
        "status": "Rejected"}
    assert runtime.core.state.connector(1).phase.value == "idle"
    assert runtime.store.charging_profiles() == ()

    assert await backend.ask("RemoteStartTransaction", {
        "idTag": TAG, "connectorId": 1,
        "chargingProfile": tx_default(9, [(0, 8), (2, 13)], purpose="TxProfile")}) == {
        "status": "Accepted"}
    await csms.wait_for(lambda: csms.of("StartTransaction"))
    await ctl(sock, "sim.charge")
    # The simulated vehicle reads the PWM duty: 8 A, then 13 A two seconds into the session.
    await wait_until(lambda: devices.sim.vehicle.offered_current_a == pytest.approx(8.0, abs=0.1),
                     what="8 A offered on the pilot")
    await wait_until(lambda: devices.sim.vehicle.offered_current_a == pytest.approx(13.0, abs=0.1),
                     what="13 A offered on the pilot")
    [stored] = runtime.store.charging_profiles()
    assert (stored.profile.profile_id, stored.awaiting_start) == (9, False)

    # A TxProfile of 4 A on top: below 6 A energy is suspended (no PWM, contactor open,
    # SuspendedEVSE at the backend), and comes back when it is cleared.
    assert await backend.ask("SetChargingProfile", {"connectorId": 1, "csChargingProfiles": {
        **tx_default(10, [(0, 4)], purpose="TxProfile", level=2), "transactionId": 1000}}) == {
        "status": "Accepted"}
    await csms.wait_for(lambda: any(r.payload["status"] == "SuspendedEVSE"
                                    for r in csms.of("StatusNotification")))
    assert devices.sim.vehicle.offered_current_a is None
    assert not devices.contactor.commanded_closed
    assert await backend.ask("ClearChargingProfile", {"id": 10}) == {"status": "Accepted"}
    await wait_until(lambda: devices.contactor.commanded_closed, what="contactor closed again")
    assert devices.sim.vehicle.offered_current_a == pytest.approx(13.0, abs=0.1)

    # The transaction ends: its TxProfile goes, from memory and from the store.
    await backend.ask("RemoteStopTransaction", {"transactionId": 1000})
    await csms.wait_for(lambda: csms.of("StopTransaction"))
    await wait_until(lambda: runtime.store.charging_profiles() == (), what="TxProfile removed")
    assert smart_limit(runtime) is None


async def test_limits_with_decimals_are_applied_and_keep_the_link(station, csms):
    """A limit such as 16.5 (what a site balancer sends) is validated as the schema's
    decimal, whichever of the frame check and the library validates first: Accepted, the
    link stays up; one that is not a multiple of 0.1 gets a CALLERROR, also on the same link."""
    runtime, _ = station
    backend = Backend(csms)
    connects = runtime.client.connection.health.connects
    for pid, connector_id, level, limit in [(21, 1, 1, 16.5), (21, 1, 1, 32.0),
                                            (22, 0, 2, 7.3)]:
        assert await backend.ask("SetChargingProfile", {
            "connectorId": connector_id,
            "csChargingProfiles": tx_default(pid, [(0, limit)], level=level)}) == {
            "status": "Accepted"}
        await wait_until(lambda limit=limit: smart_limit(runtime) == limit,
                         what=f"{limit} A applied")
    reply = await backend.ask("SetChargingProfile", {
        "connectorId": 1, "csChargingProfiles": tx_default(23, [(0, 16.55)], level=5)})
    assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation", reply
    assert await backend.ask("RemoteStartTransaction", {
        "idTag": TAG, "connectorId": 1,
        "chargingProfile": tx_default(24, [(0, 10.5)], purpose="TxProfile")}) == {
        "status": "Accepted"}
    assert runtime.client.online
    assert runtime.client.connection.health.connects == connects
