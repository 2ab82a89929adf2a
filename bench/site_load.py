"""Site load management: 20 chargers on a 100 A site, vehicles arriving and leaving.

Two variants, side by side (``--variant both``, the default):

- ``firmware``: 20 fleet chargers (:mod:`chargerfw.sim.fleet`: the real station runtime on
  simulated hardware, one process) against the bundled backend in this process (SQLite in a
  temporary directory, loopback). What is measured is what the vehicles see: the current
  offered by the PWM duty at each simulated pilot, counted while that connector's contactor
  is closed or its vehicle is in state C. The watcher samples the sum every 50 ms (the
  figure the site limit is judged by), and times each vehicle's start from the charger's
  StartTransaction accepted until every charging vehicle's pilot offers what the backend
  gave it (the last pilot change the start caused). Vehicles draw at most 32, 16 or 10 A
  (chosen per charger), so some draw less than they are offered and the backend re-shares.
- ``baseline``: the same site with ``ocpp``-library test charge points that apply a
  SetChargingProfile at once (no firmware, no pilot): what the backend alone costs. It
  stays because the difference is the firmware's share of the time (profile handling, the
  composite, the pilot), which is what a site engineer asks about.

Prints figures only; exits 1 if the sum ever exceeded the site limit (a bug, not a figure).
Log lines below WARNING are left out (``--log-level INFO`` shows the whole exchange).

Figures on the 2-core dev VM (120 arrivals, other work running): baseline highest sum 100.0 A
over 1679 samples, start -> applied p50 78 ms / p99 234 ms; firmware 100.0 A over 4281
samples, p50 291 ms / p99 1540 ms, 53 arrivals queued at 0 A.

    python bench/site_load.py [--variant both|firmware|baseline] [--chargers 20]
                              [--site-a 100] [--starts 120]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from csms_common import percentiles
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from chargerfw.control.api import SimChargeRequest
from chargerfw.csms.server import CsmsSettings, running_csms
from chargerfw.csms.store import ConnectorSpec, EvseSpec, LocationSpec
from chargerfw.csms.tables import site_allocations
from chargerfw.logs import setup_logging
from chargerfw.sim.fleet import FleetCharger, FleetSettings, charge_point_id
from chargerfw.sim.fleet.settings import CONNECTOR
from chargerfw.sim.scenario import PlugIn, Tap, Unplug, charger_uid
from chargerfw.store import Store

MIN_A = 6.0
QUIET_S = 0.3  # nothing changed for this long: the start's changes are all applied
SAMPLE_S = 0.05
SETTLE_TIMEOUT_S = 30.0
STATION_MAX_A = 32.0  # the fleet station's connector rating
PILOT_TOLERANCE_A = 0.15  # the PWM duty's resolution, as the vehicle reads it back
VEHICLE_MAX_A = (32.0, 16.0, 10.0)
LOCATION = LocationSpec(id="LOC", address="Bench 1", city="Utrecht", country="NLD",
                        latitude="52.08917", longitude="5.11028", time_zone="Europe/Amsterdam")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BenchCharger(ChargePoint):
    """Applies profiles at once; its vehicle draws what the pilot offers."""

    last_profile_at = 0.0

    def __init__(self, cp_id: str, ws: Any) -> None:
        super().__init__(cp_id, ws, response_timeout=10)
        self.profiles: dict[tuple[int, str], float] = {}
        self.transaction: int | None = None
        self.meter_wh = 0  # the register goes on: each start is a new StartTransaction

    @on(Action.set_charging_profile)
    async def on_set(self, connector_id: int, cs_charging_profiles: dict[str, Any]
                     ) -> call_result.SetChargingProfile:
        periods = cs_charging_profiles["charging_schedule"]["charging_schedule_period"]
        purpose = cs_charging_profiles["charging_profile_purpose"]
        if purpose == "TxProfile" and (
                self.transaction is None
                or cs_charging_profiles.get("transaction_id") != self.transaction):
            return call_result.SetChargingProfile(status="Rejected")  # not its transaction
        self.profiles[(connector_id, cs_charging_profiles["charging_profile_purpose"])] = \
            float(periods[0]["limit"])
        BenchCharger.last_profile_at = time.monotonic()
        return call_result.SetChargingProfile(status="Accepted")

    @on(Action.change_configuration)
    async def on_change_configuration(self, **_kw: Any) -> call_result.ChangeConfiguration:
        return call_result.ChangeConfiguration(status="Accepted")  # the site's fallback

    @on(Action.get_configuration)
    async def on_get_configuration(self, **_kw: Any) -> call_result.GetConfiguration:
        return call_result.GetConfiguration(configuration_key=[
            {"key": "SupportedFeatureProfiles", "readonly": True,
             "value": "Core,SmartCharging"}])

    def offered(self) -> float:
        if self.transaction is None:
            return 0.0
        limit = self.profiles.get((1, "TxProfile"), self.profiles.get((0, "TxDefaultProfile")))
        if limit is None:
            return float("inf")  # no limit at all: the site would be unprotected
        return limit if limit >= MIN_A else 0.0

    async def start_session(self, tag: str) -> None:
        result = await self.call(call.StartTransaction(
            connector_id=1, id_tag=tag, meter_start=self.meter_wh, timestamp=now_iso()))
        if result.id_tag_info["status"] != "Accepted":
            raise RuntimeError(f"{self.id}: start refused {result.id_tag_info}")
        self.transaction = result.transaction_id

    async def stop_session(self) -> None:
        assert self.transaction is not None
        tx, self.transaction = self.transaction, None
        self.profiles.pop((1, "TxProfile"), None)  # a TxProfile ends with its transaction
        self.meter_wh += 1000
        await self.call(call.StopTransaction(meter_stop=self.meter_wh, timestamp=now_iso(),
                                             transaction_id=tx))


async def quiet(since: float, expect_one: bool) -> float:
    """Wait until no profile arrived for QUIET_S after ``since`` (and, with
    ``expect_one``, until one did); the time the last one arrived."""
    while (expect_one and BenchCharger.last_profile_at < since) \
            or time.monotonic() - max(BenchCharger.last_profile_at, since) < QUIET_S:
        await asyncio.sleep(0.01)
    return BenchCharger.last_profile_at


async def run_baseline(args: argparse.Namespace, tmp: Path) -> Figures:
    figures = Figures("baseline (ocpp-library test charge points)")
    settings = CsmsSettings(db=str(tmp / "csms-baseline.sqlite3"), ocpp_port=0, api_port=0,
                            heartbeat_interval=3600)
    async with running_csms(settings) as csms, contextlib.AsyncExitStack() as stack:
        store = csms.store
        store.add_site("SITE", "Bench car park", args.site_a)
        chargers: list[BenchCharger] = []
        tasks = []
        for n in range(args.chargers):
            cp_id = f"SITE-CP{n:02d}"
            store.add_charge_point(cp_id, None, LOCATION, [EvseSpec(
                uid=f"{cp_id}-1", ocpp_connector_id=1, connectors=[ConnectorSpec(
                    "1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32, 22000)])])
            store.assign_site(cp_id, "SITE")
            store.add_local_token(f"TAG{n:02d}")
            ws = await stack.enter_async_context(connect(f"{csms.ocpp_url}/{cp_id}",
                                                         subprotocols=["ocpp1.6"]))
            charger = BenchCharger(cp_id, ws)
            tasks.append(asyncio.create_task(charger.start()))
            await charger.call(call.BootNotification(charge_point_model="Bench",
                                                     charge_point_vendor="chargerfw"))
            chargers.append(charger)
        await quiet(time.monotonic(), expect_one=False)

        stop_sampling = asyncio.Event()

        async def sample() -> None:
            while not stop_sampling.is_set():
                figures.peak_a = max(figures.peak_a, sum(c.offered() for c in chargers))
                figures.samples += 1
                await asyncio.sleep(SAMPLE_S)

        sampler = asyncio.create_task(sample())
        rng = random.Random(11)
        for _ in range(args.starts):
            idle = [c for c in chargers if c.transaction is None]
            busy = [c for c in chargers if c.transaction is not None]
            # Vehicles leave at random, more often on a full site.
            while busy and (not idle or rng.random() < len(busy) / len(chargers) * 0.6):
                leaving = busy.pop(rng.randrange(len(busy)))
                left = time.monotonic()
                await leaving.stop_session()
                idle.append(leaving)
                await quiet(left, expect_one=False)
            arriving = rng.choice(idle)
            started = time.monotonic()
            await arriving.start_session(f"TAG{chargers.index(arriving):02d}")
            # Every start is answered with at least the session's own TxProfile.
            applied = await quiet(started, expect_one=True)
            figures.settle_ms.append((applied - started) * 1000)
        stop_sampling.set()
        await sampler
        for task in tasks:
            task.cancel()

    return figures


# -- the real firmware ----------------------------------------------------------------------


@dataclass
class Figures:
    label: str
    peak_a: float = 0.0
    samples: int = 0
    settle_ms: list[float] = field(default_factory=list)
    queued_starts: int = 0  # starts the site had no 6 A for (the vehicle waits at 0 A)
    elapsed_s: float = 0.0


@dataclass
class Bay:
    """One fleet charger as the bench sees it."""

    charger: FleetCharger
    card: str
    max_a: float  # what this charger's vehicles draw at most
    confirmed_at: float = 0.0  # monotonic time of the last StartTransaction accepted
    offer: float | None = None  # the pilot's offer at the last look
    changed_at: float = 0.0  # when the pilot's offer last changed

    def on_event(self, event: str, _fields: dict[str, Any]) -> None:
        if event == "transaction.confirmed":
            self.confirmed_at = time.monotonic()


def allocations(store: Any) -> dict[str, float]:
    """The limit the backend gave each charger's connector 1 (accepted by the charger)."""
    with store.engine.connect() as c:
        return {row.charge_point_id: float(row.limit_a) for row in c.execute(
            sa.select(site_allocations.c.charge_point_id, site_allocations.c.limit_a).where(
                site_allocations.c.connector_id == CONNECTOR))}


def pilot_matches(bay: Bay, given: float | None) -> bool:
    """Whether the pilot offers what the backend gave (no PWM below 6 A)."""
    offered = bay.charger.offered_at_pilot_a()
    if given is None:
        return False
    if given < MIN_A:
        return offered is None or offered == 0.0
    return offered is not None and abs(offered - min(given, STATION_MAX_A)) <= PILOT_TOLERANCE_A


async def run_firmware(args: argparse.Namespace, tmp: Path) -> Figures:
    figures = Figures("firmware (fleet runtimes, simulated hardware)")
    settings = CsmsSettings(db=str(tmp / "csms-fw.sqlite3"), host="127.0.0.1", ocpp_port=0,
                            api_port=0, heartbeat_interval=3600)
    async with running_csms(settings) as csms:
        store = csms.store
        store.add_site("SITE", "Bench car park", args.site_a, fallback_a=args.fallback_a)
        fleet = FleetSettings(count=args.chargers, csms_url=csms.ocpp_url,
                              state_dir=tmp / "fleet", safety_poll_s=args.safety_poll_s,
                              meter_poll_s=0.5, meter_values_interval_s=2,
                              shutdown_flush_s=2.0)
        rng = random.Random(11)
        bays: list[Bay] = []
        for index in range(1, args.chargers + 1):
            cp_id = charge_point_id(fleet.id_prefix, index, fleet.count)
            store.add_charge_point(cp_id, None, LOCATION, [EvseSpec(
                uid=f"{cp_id}-1", ocpp_connector_id=CONNECTOR, connectors=[ConnectorSpec(
                    "1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32, 22000)])])
            store.assign_site(cp_id, "SITE")
            store.add_local_token(charger_uid(index))
            charger = FleetCharger(fleet, index, tmp / "fleet" / cp_id,
                                   random.Random(f"bench-{index}"))
            charger.prepare()
            with Store(charger.config.storage.path) as station_store:
                station_store.config_set("MeterValuesSampledData",
                                         "Energy.Active.Import.Register,Current.Import")
            bays.append(Bay(charger, charger_uid(index), rng.choice(VEHICLE_MAX_A)))

        stations = []
        for bay in bays:
            ready = asyncio.Event()
            stations.append(asyncio.create_task(bay.charger.run(ready)))
            await ready.wait()
            assert bay.charger.runtime is not None
            bay.charger.runtime.event_listeners.append(bay.on_event)
        for bay in bays:
            await bay.charger.wait_online()
        await csms.balancer.settled()

        stop_watching = asyncio.Event()

        async def watch() -> None:
            """Every SAMPLE_S: the sum of the offers at the pilots, and when each changed."""
            while not stop_watching.is_set():
                now = time.monotonic()
                total = 0.0
                for bay in bays:
                    total += bay.charger.offered_while_drawing_a()
                    offer = bay.charger.offered_at_pilot_a()
                    if offer != bay.offer:
                        bay.offer, bay.changed_at = offer, now
                figures.peak_a = max(figures.peak_a, total)
                figures.samples += 1
                await asyncio.sleep(SAMPLE_S)

        async def settled(since: float) -> float:
            """Wait until the backend is done and every charging vehicle's pilot offers
            what it was given; the time the last pilot changed after ``since``."""
            deadline = time.monotonic() + SETTLE_TIMEOUT_S
            quiet_since: float | None = None
            while True:
                await csms.balancer.settled()
                given = await asyncio.to_thread(allocations, store)
                busy = [b for b in bays if b.charger.running_tx() is not None]
                ok = all(pilot_matches(b, given.get(b.charger.id)) for b in busy)
                now = time.monotonic()
                if ok:
                    quiet_since = quiet_since or now
                    if now - quiet_since >= QUIET_S:
                        return max([since] + [b.changed_at for b in bays
                                              if b.changed_at >= since])
                else:
                    quiet_since = None
                if now > deadline:
                    raise RuntimeError(
                        "pilots did not reach the backend's allocation within "
                        f"{SETTLE_TIMEOUT_S:g} s: " + ", ".join(
                            f"{b.charger.id} gave {given.get(b.charger.id)} "
                            f"offers {b.charger.offered_at_pilot_a()}" for b in busy))
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        try:
            for _ in range(args.starts):
                idle = [b for b in bays if b.charger.running_tx() is None]
                busy = [b for b in bays if b.charger.running_tx() is not None]
                while busy and (not idle or rng.random() < len(busy) / len(bays) * 0.6):
                    leaving = busy.pop(rng.randrange(len(busy)))
                    left = time.monotonic()
                    await leaving.charger.play(Unplug())
                    idle.append(leaving)
                    await settled(left)
                arriving = rng.choice(idle)
                charger = arriving.charger
                await charger.play(PlugIn())
                await charger.request(SimChargeRequest(CONNECTOR,
                                                       max_current_a=arriving.max_a))
                before = arriving.confirmed_at
                await charger.play(Tap(expect="start"))
                while arriving.confirmed_at == before:
                    await asyncio.sleep(0.005)
                started = arriving.confirmed_at
                applied = await settled(started)
                figures.settle_ms.append((applied - started) * 1000)
                given = (await asyncio.to_thread(allocations, store)).get(charger.id, 0.0)
                figures.queued_starts += given < MIN_A
        finally:
            stop_watching.set()
            await watcher
            for bay in bays:
                bay.charger.stop()
            await asyncio.wait(stations, timeout=30)
    return figures


def report(args: argparse.Namespace, figures: Figures) -> bool:
    """Print one variant's figures; False when the site limit was exceeded."""
    spread = percentiles(figures.settle_ms)
    exceeded = figures.peak_a > args.site_a + 1e-6
    print(f"{figures.label}: {args.chargers} chargers on a {args.site_a:g} A site, "
          f"{len(figures.settle_ms)} arrivals in {figures.elapsed_s:.0f} s")
    print(f"  highest sum of offered current: {figures.peak_a:.1f} A over {figures.samples} "
          f"samples (site limit {args.site_a:g} A){'  EXCEEDED' if exceeded else ''}")
    if spread:
        print(f"  vehicle start -> every charger's new limit applied: "
              f"p50 {spread['p50']:.1f} ms, p99 {spread['p99']:.1f} ms, "
              f"max {spread['max']:.1f} ms (n={len(figures.settle_ms)})")
    if figures.label.startswith("firmware"):
        print(f"  arrivals queued at 0 A (no 6 A free): {figures.queued_starts}")
    return not exceeded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=("both", "firmware", "baseline"), default="both")
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--site-a", type=float, default=100.0)
    parser.add_argument("--fallback-a", type=float, default=0.0,
                        help="the site's offline fallback per connector")
    parser.add_argument("--starts", type=int, default=120)
    parser.add_argument("--safety-poll-s", type=float, default=0.1,
                        help="the fleet chargers' safety monitor period")
    parser.add_argument("--log-level", default="WARNING",
                        help="the chargers' and the backend's log lines from this level up")
    args = parser.parse_args()
    setup_logging(args.log_level)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, run in (("baseline", run_baseline), ("firmware", run_firmware)):
            if args.variant in ("both", name):
                began = time.monotonic()
                figures = asyncio.run(run(args, Path(tmp)))
                figures.elapsed_s = time.monotonic() - began
                ok &= report(args, figures)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
