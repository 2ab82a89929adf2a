"""Many simulated chargers against one `chargerfw csms serve` over loopback.

Each charger connects over OCPP 1.6J, boots, starts a transaction and sends meter values at a
fixed interval, then stops. Prints the message rate the backend sustained and the round-trip
latency (request sent -> CALLRESULT received) percentiles.

    .venv/bin/python bench/csms_load.py --chargers 300 --meter-values 20 --interval 1
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from csms_common import percentiles, served_csms
from websockets.asyncio.client import ClientConnection, connect

from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.ocpi.models import Token
from chargerfw.csms.store import (
    ConnectorSpec,
    CpoIdentity,
    EvseSpec,
    LocationSpec,
    Store,
)


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0
    messages: int = 0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class RawCharger:
    """A minimal OCPP-J client: one request in flight, JSON frames by hand (cheap on CPU)."""

    def __init__(self, ws: ClientConnection, stats: Stats) -> None:
        self.ws = ws
        self.stats = stats
        self.ids = itertools.count(1)

    async def call(self, action: str, payload: dict[str, object]) -> dict[str, object]:
        unique_id = str(next(self.ids))
        started = time.perf_counter()
        await self.ws.send(json.dumps([2, unique_id, action, payload]))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply[1] == unique_id:
                break
        self.stats.latencies.setdefault(action, []).append(time.perf_counter() - started)
        self.stats.messages += 1
        if reply[0] != 3:
            self.stats.errors += 1
            return {}
        return dict(reply[2])


async def run_charger(url: str, cp_id: str, meter_values: int, interval: float,
                      stats: Stats, ready: asyncio.Barrier) -> None:
    async with connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"], open_timeout=60,
                       ping_interval=None) as ws:
        charger = RawCharger(ws, stats)
        await charger.call("BootNotification", {"chargePointVendor": "bench",
                                                "chargePointModel": "load"})
        await charger.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                  "status": "Available"})
        await ready.wait()
        start = await charger.call("StartTransaction", {
            "connectorId": 1, "idTag": "BENCHTAG", "meterStart": 0, "timestamp": now_iso()})
        tx_id = start.get("transactionId", 0)
        await asyncio.sleep(random.uniform(0, interval))  # spread the chargers out
        energy = 0
        for _ in range(meter_values):
            energy += random.randint(50, 200)
            await charger.call("MeterValues", {
                "connectorId": 1, "transactionId": tx_id, "meterValue": [{
                    "timestamp": now_iso(), "sampledValue": [
                        {"value": str(energy), "measurand": "Energy.Active.Import.Register",
                         "unit": "Wh"},
                        {"value": "16.0", "measurand": "Current.Import", "unit": "A",
                         "phase": "L1"},
                        {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
            await asyncio.sleep(interval)
        await charger.call("StopTransaction", {"transactionId": tx_id, "meterStop": energy,
                                               "timestamp": now_iso(), "reason": "Local"})


def prepare_database(db: str, chargers: int) -> None:
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    store.add_charge_point("BENCH0000", None, LocationSpec(
        "BENCHLOC", "Bench 1", "Utrecht", "NLD", "52.08917", "5.11028", "Europe/Amsterdam"),
        [EvseSpec("BENCH0000-1", 1, [ConnectorSpec("1", "IEC_62196_T2", "SOCKET",
                                                   "AC_3_PHASE", 400, 32)])])
    for n in range(1, chargers):
        cp_id = f"BENCH{n:04d}"
        store.add_charge_point(cp_id, None, LocationSpec(
            "BENCHLOC", "", "", "NLD", "52.08917", "5.11028", ""),
            [EvseSpec(f"{cp_id}-1", 1, [ConnectorSpec("1", "IEC_62196_T2", "SOCKET",
                                                      "AC_3_PHASE", 400, 32)])])
    store.put_token(Token.model_validate({
        "country_code": "DE", "party_id": "EMS", "uid": "BENCHTAG", "type": "RFID",
        "contract_id": "DE-EMS-BENCH", "issuer": "bench", "valid": True,
        "whitelist": "ALWAYS", "last_updated": datetime.now(UTC)}), None)
    engine.dispose()


async def main_async(args: argparse.Namespace, db: str) -> None:
    stats = Stats()
    with served_csms(db) as csms:
        ready = asyncio.Barrier(args.chargers + 1)
        t_connect = time.perf_counter()
        tasks = [asyncio.create_task(run_charger(csms.ocpp_url, f"BENCH{n:04d}",
                                                 args.meter_values, args.interval, stats,
                                                 ready))
                 for n in range(args.chargers)]
        await ready.wait()
        connected_s = time.perf_counter() - t_connect
        t0 = time.perf_counter()
        before = stats.messages
        results = await asyncio.gather(*tasks, return_exceptions=True)
        elapsed = time.perf_counter() - t0
    failures = [r for r in results if isinstance(r, BaseException)]
    sent = stats.messages - before
    print(f"backend: {db.split('://')[0] if '://' in db else 'sqlite'}; "
          f"chargers: {args.chargers}, all booted in {connected_s:.2f} s")
    print(f"transaction phase: {sent} requests in {elapsed:.2f} s = {sent / elapsed:.0f} msg/s "
          f"(offered about {args.chargers / args.interval:.0f} msg/s of MeterValues)")
    print(f"CALLERRORs: {stats.errors}; chargers that failed: {len(failures)}")
    for action in ("BootNotification", "StartTransaction", "MeterValues", "StopTransaction"):
        values = stats.latencies.get(action, [])
        figures = percentiles([v * 1000 for v in values])
        text = "  ".join(f"{k}={v:.1f}" for k, v in figures.items())
        print(f"  {action:<17} n={len(values):<6} latency ms: {text}")
    if failures:
        print(f"first failure: {failures[0]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=300)
    parser.add_argument("--meter-values", type=int, default=20, help="per charger")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between them")
    parser.add_argument("--db", default=None, help="database (default: a temporary SQLite)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp:
        db = args.db or str(Path(tmp) / "bench.sqlite3")
        prepare_database(db, args.chargers)
        asyncio.run(main_async(args, db))


if __name__ == "__main__":
    main()
