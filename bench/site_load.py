"""Site load management: 20 chargers on a 100 A site, vehicles arriving and leaving.

Prints the highest sum of offered current seen at any sample (every charging connector's
pilot offers its applied limit, 0 below 6 A) against the site limit, and the time from a
vehicle starting (StartTransaction sent) to every charger's new limit applied (the last
SetChargingProfile the start caused, answered), p50/p99.

The chargers are ``ocpp``-library test charge points, not the firmware: they apply
SetChargingProfile at once with a simple composite (the connector's TxProfile, else the
TxDefaultProfile of connector 0) and their vehicles draw what they are offered. The backend
runs in this process on loopback (SQLite in a temporary directory).

    python bench/site_load.py [--chargers 20] [--site-a 100] [--starts 120]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from csms_common import percentiles
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action
from websockets.asyncio.client import connect

from chargerfw.csms.server import CsmsSettings, running_csms
from chargerfw.csms.store import ConnectorSpec, EvseSpec, LocationSpec

MIN_A = 6.0
QUIET_S = 0.3  # no SetChargingProfile for this long: the start's changes are all applied


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


async def run(args: argparse.Namespace, db: str) -> None:
    settings = CsmsSettings(db=db, ocpp_port=0, api_port=0, heartbeat_interval=3600)
    async with running_csms(settings) as csms, contextlib.AsyncExitStack() as stack:
        store = csms.store
        store.add_site("SITE", "Bench car park", args.site_a)
        location = LocationSpec(id="LOC", address="Bench 1", city="Utrecht", country="NLD",
                                latitude="52.08917", longitude="5.11028",
                                time_zone="Europe/Amsterdam")
        chargers: list[BenchCharger] = []
        tasks = []
        for n in range(args.chargers):
            cp_id = f"SITE-CP{n:02d}"
            store.add_charge_point(cp_id, None, location, [EvseSpec(
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

        peak, samples = 0.0, 0
        stop_sampling = asyncio.Event()

        async def sample() -> None:
            nonlocal peak, samples
            while not stop_sampling.is_set():
                peak = max(peak, sum(c.offered() for c in chargers))
                samples += 1
                await asyncio.sleep(0.005)

        sampler = asyncio.create_task(sample())
        rng = random.Random(11)
        settle_ms: list[float] = []
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
            settle_ms.append((applied - started) * 1000)
        stop_sampling.set()
        await sampler
        for task in tasks:
            task.cancel()

    figures = percentiles(settle_ms)
    print(f"site load: {args.chargers} chargers on a {args.site_a:g} A site, "
          f"{args.starts} arrivals (test charge points, not the firmware)")
    print(f"  highest sum of offered current: {peak:.1f} A over {samples} samples "
          f"(site limit {args.site_a:g} A){'  EXCEEDED' if peak > args.site_a + 1e-6 else ''}")
    print(f"  vehicle start -> every charger's new limit applied: "
          f"p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, "
          f"max {figures['max']:.1f} ms (n={len(settle_ms)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=20)
    parser.add_argument("--site-a", type=float, default=100.0)
    parser.add_argument("--starts", type=int, default=120)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args, str(Path(tmp) / "csms.sqlite3")))


if __name__ == "__main__":
    main()
