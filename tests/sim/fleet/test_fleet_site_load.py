"""Site load management with the real firmware: fleet chargers (station runtimes on simulated
hardware) on one site of the bundled backend, vehicles arriving one by one. What is checked is
what the vehicles see at their pilots: the sum of the offered currents never exceeds the site,
every charging vehicle is offered 0 or at least 6 A, a vehicle that does not fit waits at 0 A
(SuspendedEVSE) until another leaves, and a vehicle drawing less than offered leaves the rest
to the others."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes import wait_until
from fleet_helpers import bundled_csms

from chargerfw.control.api import SimChargeRequest
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.store import ConnectorSpec, EvseSpec, LocationSpec
from chargerfw.sim.fleet import FleetCharger, FleetSettings
from chargerfw.sim.fleet.settings import CONNECTOR, charge_point_id
from chargerfw.sim.scenario import PlugIn, Tap, Unplug
from chargerfw.station.enums import ChargePointStatus
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(90)

SITE_A = 32.0
COUNT = 6  # five vehicles fit at 6 A each; the sixth does not
MIN_A = 6.0
TOLERANCE_A = 0.05  # the PWM duty read back by the vehicle
LOCATION = LocationSpec(id="LOC", address="Test 1", city="Utrecht", country="NLD",
                        latitude="52.08917", longitude="5.11028", time_zone="Europe/Amsterdam")


@dataclasses.dataclass
class PilotWatch:
    """Every 50 ms: the sum of what the pilots offer the vehicles that may draw it."""

    chargers: list[FleetCharger]
    samples: int = 0
    peak_a: float = 0.0
    violations: list[str] = dataclasses.field(default_factory=list)

    async def run(self) -> None:
        while True:
            offers = {c.id: c.offered_while_drawing_a() for c in self.chargers
                      if c.runtime is not None and c.runtime.ready.is_set()}
            total = sum(offers.values())
            self.samples += 1
            self.peak_a = max(self.peak_a, total)
            if total > SITE_A + TOLERANCE_A:
                self.violations.append(f"sum {total:.2f} A: {offers}")
            for cp_id, offer in offers.items():
                if 0 < offer < MIN_A - TOLERANCE_A:
                    self.violations.append(f"{cp_id} offered {offer:.2f} A")
            await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def site_fleet(csms: RunningCsms, tmp_path: Path, count: int = COUNT,
                     fallback_a: float = 0.0, keys: dict[str, str] | None = None
                     ) -> AsyncIterator[list[FleetCharger]]:
    """``count`` fleet chargers on a SITE_A site, online; ``keys``: OCPP keys they start with."""
    settings = FleetSettings(count=count, csms_url=csms.ocpp_url, state_dir=tmp_path / "fleet",
                             safety_poll_s=0.05, meter_poll_s=0.25, meter_values_interval_s=1,
                             shutdown_flush_s=1.0)
    csms.store.add_site("SITE", "Test car park", SITE_A, fallback_a=fallback_a)
    chargers = []
    for index in range(1, count + 1):
        cp_id = charge_point_id(settings.id_prefix, index, count)
        csms.store.add_charge_point(cp_id, None, LOCATION, [EvseSpec(
            uid=f"{cp_id}-1", ocpp_connector_id=CONNECTOR, connectors=[ConnectorSpec(
                "1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32, 22000)])])
        csms.store.assign_site(cp_id, "SITE")
        charger = FleetCharger(settings, index, tmp_path / "fleet" / cp_id,
                               random.Random(index))
        charger.prepare()
        with Store(charger.config.storage.path) as store:
            # The backend re-shares when a vehicle draws less than offered: it needs the current.
            store.config_set("MeterValuesSampledData",
                             "Energy.Active.Import.Register,Current.Import")
            for key, value in (keys or {}).items():
                store.config_set(key, value)
        chargers.append(charger)
    stations = []
    try:
        for charger in chargers:
            ready = asyncio.Event()
            stations.append(asyncio.create_task(charger.run(ready)))
            await ready.wait()
        for charger in chargers:
            await charger.wait_online()
        yield chargers
    finally:
        for charger in chargers:
            charger.stop()
        if stations:
            await asyncio.wait(stations, timeout=20)


async def arrive(charger: FleetCharger, max_a: float = 32.0) -> None:
    await charger.play(PlugIn())
    await charger.request(SimChargeRequest(CONNECTOR, max_current_a=max_a))
    await charger.play(Tap(expect="start"))


def offers(chargers: list[FleetCharger]) -> list[float | None]:
    return [c.offered_at_pilot_a() for c in chargers]


def near(values: list[float | None], expected: list[float | None]) -> bool:
    return all((v is None) if e is None else (v is not None and abs(v - e) <= TOLERANCE_A)
               for v, e in zip(values, expected, strict=True))


async def settle_at(csms: RunningCsms, chargers: list[FleetCharger],
                    expected: list[float | None], what: str) -> None:
    async def reached() -> bool:
        await csms.balancer.settled()
        return near(offers(chargers), expected)

    try:
        await wait_until(reached, timeout=15, what=what)
    except AssertionError:
        raise AssertionError(f"{what}: pilots offer {offers(chargers)}") from None


async def test_vehicles_share_the_site_at_their_pilots(tmp_path: Path) -> None:
    async with bundled_csms(tmp_path, COUNT) as csms, site_fleet(csms, tmp_path) as chargers:
        watch = PilotWatch(chargers)
        watcher = asyncio.create_task(watch.run())
        try:
            one, two, three, four, five, six = chargers
            # The first vehicle takes what it draws at most (the connector's 32 A).
            await arrive(one, max_a=8.0)
            await settle_at(csms, [one], [32.0], "one vehicle: the whole site")
            # It draws only 8 A: once the backend measured that it keeps 8 + 2 A, and the
            # second vehicle gets the rest instead of an even 16 A.
            await arrive(two)
            await settle_at(csms, [one, two], [10.0, 22.0],
                            "a vehicle drawing less leaves the rest to the other")
            for charger in (three, four, five):
                await arrive(charger)
            await settle_at(csms, chargers[:5], [6.4] * 5, "five vehicles, even shares")
            # The sixth does not fit at 6 A: it waits at 0 A, SuspendedEVSE.
            await arrive(six)
            await settle_at(csms, chargers, [6.4] * 5 + [None], "the sixth queued")
            await wait_until(lambda: six.status() is ChargePointStatus.SUSPENDED_EVSE,
                             what="the sixth SuspendedEVSE")
            assert not six.connector().contactor_closed
            # One leaves: the sixth is served.
            await two.play(Unplug())
            await settle_at(csms, [one, three, four, five, six], [6.4] * 5,
                            "the queued vehicle served once another left")
            await wait_until(lambda: six.status() is ChargePointStatus.CHARGING,
                             what="the sixth charging")
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
    assert watch.samples > 20  # it watched the whole run (a second or more), not a moment
    assert watch.violations == [], watch.violations[:5]
    assert watch.peak_a > SITE_A - 1  # the site was used up, not just left idle


async def test_a_charger_that_loses_the_backend_falls_to_the_sites_fallback(
        tmp_path: Path) -> None:
    """The backend tells every charger of the site its fallback (ChargerfwOfflineLimitA); when
    the link goes, each pilot falls to it, which is what the allocator counts them at."""
    async with bundled_csms(tmp_path, 2) as csms, \
            site_fleet(csms, tmp_path, count=2, fallback_a=8.0,
                       keys={"ChargerfwOfflineAfterS": "1"}) as chargers:
        for charger in chargers:
            await arrive(charger)
        await settle_at(csms, chargers, [16.0, 16.0], "two vehicles, even shares")
        for charger in chargers:
            assert charger.runtime is not None and charger.runtime.client is not None
            assert charger.runtime.client.keys.raw("ChargerfwOfflineLimitA") == "8"
        await csms.ocpp.close()
        for charger in chargers:
            await csms.ocpp.disconnect(charger.id)
        await wait_until(lambda: near(offers(chargers), [8.0, 8.0]), timeout=15,
                         what="the fallback at the pilots")
        assert all(not c.online for c in chargers)
