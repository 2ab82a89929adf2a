"""Many simulated chargers against one `chargerfw csms serve` over loopback.

Phases, all in one run against one backend process:

1. baseline: one probe charger alone sends Heartbeats one after another (the backend's
   round trip with nothing else to do: the figure the others are compared with);
2. first connect: the fleet connects (Basic auth with the AuthorizationKey the backend
   generated for each charger, as a fleet following the OCPP security whitepaper has), boots
   and reports its connector; the backend's RSS before and after, divided by the fleet, is its
   memory per connected charger;
3. sessions: each charger starts a transaction (spread over the first interval), sends
   MeterValues every ``--interval`` s ``--meter-values`` times, and stops; the probe sends
   a Heartbeat every ``--probe-gap`` s beside them;
4. boot storms: the backend is stopped and a fresh one started on the same database, and the
   whole fleet reconnects at once, each charger booting and reporting its connector again:
   the time until all are booted. First with the backend-generated keys (stored as a salted
   SHA-256), then with a password an operator chose (``--password``, stored as salted scrypt:
   each charger costs one scrypt after a restart); each followed by a second storm on the
   same backend (scrypt passwords verified before are remembered per process).

Prints, per phase and OCPP action, the answers' p50/p99 beside the load offered (msg/s).
The chargers answer the backend's own requests (GetConfiguration after each boot).

    .venv/bin/python bench/csms_load.py --chargers 1000 --meter-values 6 --interval 10
    .venv/bin/python bench/csms_load.py --chargers 1000 --postgres   # a private PostgreSQL
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa
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
    generate_password,
    hash_password,
)
from chargerfw.csms.tables import charge_points

PROBE = "BENCH0000"


@dataclass
class Stats:
    # phase -> action -> latencies (s)
    latencies: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    errors: int = 0

    def add(self, phase: str, action: str, latency: float) -> None:
        self.latencies.setdefault(phase, {}).setdefault(action, []).append(latency)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _answer_to(action: str) -> dict[str, Any]:
    """What a charger answers to the backend's requests (only GetConfiguration comes
    unasked; the rest would be an operator's)."""
    if action == "GetConfiguration":
        return {"configurationKey": [{"key": "SupportedFeatureProfiles", "readonly": True,
                                      "value": "Core,SmartCharging"}]}
    return {"status": "Accepted"}


class BenchCharger:
    """A minimal OCPP-J client, JSON frames by hand (cheap on CPU): calls the backend and
    answers what the backend calls."""

    def __init__(self, cp_id: str, ws: ClientConnection, stats: Stats) -> None:
        self.id = cp_id
        self.ws = ws
        self.stats = stats
        self.phase = "?"
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[list[Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, cp_id: str, password: str | None,
                   stats: Stats) -> BenchCharger:
        headers = {}
        if password is not None:
            basic = base64.b64encode(f"{cp_id}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        ws = await connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"],  # type: ignore[list-item]
                           additional_headers=headers, open_timeout=120, ping_interval=None,
                           close_timeout=5)
        return cls(cp_id, ws, stats)

    async def _read(self) -> None:
        try:
            with contextlib.suppress(Exception):
                async for raw in self.ws:
                    frame = json.loads(raw)
                    if frame[0] == 2:
                        await self.ws.send(json.dumps([3, frame[1], _answer_to(frame[2])]))
                    elif (waiter := self._pending.pop(frame[1], None)) is not None \
                            and not waiter.done():
                        waiter.set_result(frame)
        finally:
            # A call whose answer can no longer come fails (the backend closed the link).
            for waiter in self._pending.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError("the connection closed"))
            self._pending.clear()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        unique_id = str(next(self._ids))
        waiter: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = waiter
        started = time.perf_counter()
        await self.ws.send(json.dumps([2, unique_id, action, payload]))
        reply = await waiter
        self.stats.add(self.phase, action, time.perf_counter() - started)
        if reply[0] != 3:
            self.stats.errors += 1
            return {}
        return dict(reply[2])

    async def boot(self) -> None:
        await self.call("BootNotification", {"chargePointVendor": "bench",
                                             "chargePointModel": "load"})
        await self.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                               "status": "Available"})

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


async def session(charger: BenchCharger, meter_values: int, interval: float) -> None:
    await asyncio.sleep(random.uniform(0, interval))  # sessions start spread out
    start = await charger.call("StartTransaction", {
        "connectorId": 1, "idTag": "BENCHTAG", "meterStart": 0, "timestamp": now_iso()})
    tx_id = start.get("transactionId", 0)
    energy = 0
    for _ in range(meter_values):
        await asyncio.sleep(interval)
        energy += random.randint(50, 200)
        await charger.call("MeterValues", {
            "connectorId": 1, "transactionId": tx_id, "meterValue": [{
                "timestamp": now_iso(), "sampledValue": [
                    {"value": str(energy), "measurand": "Energy.Active.Import.Register",
                     "unit": "Wh"},
                    {"value": "16.0", "measurand": "Current.Import", "unit": "A",
                     "phase": "L1"},
                    {"value": "11000", "measurand": "Power.Active.Import", "unit": "W"}]}]})
    await charger.call("StopTransaction", {"transactionId": tx_id, "meterStop": energy,
                                           "timestamp": now_iso(), "reason": "Local"})


async def probe_heartbeats(probe: BenchCharger, count: int | None, gap_s: float,
                           stop: asyncio.Event | None = None) -> None:
    for n in itertools.count():
        if (count is not None and n >= count) or (stop is not None and stop.is_set()):
            return
        await probe.call("Heartbeat", {})
        await asyncio.sleep(gap_s)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def prepare_database(db: str, chargers: int) -> None:
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    connector = ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE", 400, 32)
    location = LocationSpec("BENCHLOC", "Bench 1", "Utrecht", "NLD", "52.08917", "5.11028",
                            "Europe/Amsterdam")
    store.add_charge_points([
        (f"BENCH{n:04d}", None, location,
         [EvseSpec(f"BENCH{n:04d}-1", 1, [connector])], None, True)
        for n in range(chargers)])
    store.put_token(Token.model_validate({
        "country_code": "DE", "party_id": "EMS", "uid": "BENCHTAG", "type": "RFID",
        "contract_id": "DE-EMS-BENCH", "issuer": "bench", "valid": True,
        "whitelist": "ALWAYS", "last_updated": datetime.now(UTC)}), None)
    engine.dispose()


async def connect_fleet(url: str, ids: list[str], passwords: Mapping[str, str] | None,
                        stats: Stats,
                        phase: str, give_up_s: float = 300.0
                        ) -> tuple[list[BenchCharger], float, int]:
    """Connect and boot every charger at once; one whose connection fails (or is closed
    before its boot was answered) tries again after 1-5 s, as a charger does. Returns (chargers, seconds until all booted, retries)."""
    retries = 0

    async def one(cp_id: str) -> BenchCharger:
        nonlocal retries
        while True:
            charger = None
            try:
                charger = await BenchCharger.open(
                    url, cp_id, None if passwords is None else passwords[cp_id], stats)
                charger.phase = phase
                await charger.boot()
                return charger
            except Exception:
                if charger is not None:
                    await charger.close()
                if time.perf_counter() - started > give_up_s:
                    raise
                retries += 1
                await asyncio.sleep(random.uniform(1, 5))

    started = time.perf_counter()
    results = await asyncio.gather(*(one(cp_id) for cp_id in ids), return_exceptions=True)
    elapsed = time.perf_counter() - started
    chargers = [r for r in results if isinstance(r, BenchCharger)]
    failed = [r for r in results if isinstance(r, BaseException)]
    if failed:
        print(f"  {phase}: {len(failed)} chargers gave up, first: {failed[0]!r}")
    return chargers, elapsed, retries


def print_phase(stats: Stats, phase: str, duration_s: float, title: str) -> None:
    print(f"{title} ({duration_s:.1f} s)")
    for action, values in sorted(stats.latencies.get(phase, {}).items()):
        figures = percentiles([v * 1000 for v in values])
        print(f"  {action:<18} n={len(values):<6} offered {len(values) / duration_s:7.1f} "
              f"msg/s   p50 {figures['p50']:8.1f} ms   p99 {figures['p99']:8.1f} ms   "
              f"max {figures['max']:8.1f} ms")


def set_fleet_passwords(db: str, passwords: Mapping[str, str]) -> None:
    """Store each charger's password: backend-generated keys get the fast scheme; one chosen
    password for the whole fleet is hashed once (an scrypt each would take a minute here;
    the backend still verifies each charger's once)."""
    engine = create_db_engine(db)
    hashes: dict[str, str] = {}
    with engine.begin() as c:
        for cp_id, password in passwords.items():
            if password not in hashes:
                hashes[password] = hash_password(password)
            c.execute(charge_points.update().where(charge_points.c.id == cp_id)
                      .values(password_hash=hashes[password]))
    engine.dispose()


async def storm(url: str, ids: list[str], passwords: Mapping[str, str] | None, stats: Stats,
                phase: str, title: str) -> tuple[list[BenchCharger], float]:
    """Reconnect and boot the whole fleet at once (its connections dropped before)."""
    fleet, storm_s, retries = await connect_fleet(url, ids, passwords, stats, phase)
    print_phase(stats, phase, storm_s, f"{title}: {len(fleet)} chargers reconnected at once, "
                f"all booted in {storm_s:.2f} s ({retries} connection attempts failed and were "
                "retried)")
    return fleet, storm_s


async def close_all(fleet: list[BenchCharger]) -> None:
    await asyncio.gather(*(charger.close() for charger in fleet), return_exceptions=True)


async def storms_after_restart(db: str, ids: list[str], passwords: Mapping[str, str] | None,
                               stats: Stats, name: str, title: str) -> float:
    """A fresh backend on the same database, the fleet storming it at once; then the fleet
    drops its connections and storms the same backend again. The first storm's seconds."""
    if passwords is not None:
        set_fleet_passwords(db, passwords)
    with served_csms(db) as csms:
        fleet, restart_s = await storm(csms.ocpp_url, ids, passwords, stats, f"{name}-restart",
                                       f"boot storm right after a backend restart, {title}")
        await close_all(fleet)
        await asyncio.sleep(2)  # the backend notices every disconnect
        fleet, _ = await storm(csms.ocpp_url, ids, passwords, stats, f"{name}-again",
                               f"boot storm again on that backend, {title}")
        await close_all(fleet)
    return restart_s


async def main_async(args: argparse.Namespace, db: str, keys: Mapping[str, str] | None) -> None:
    stats = Stats()
    fleet_ids = [f"BENCH{n:04d}" for n in range(1, args.chargers)]
    with served_csms(db) as csms:
        rss_idle = rss_bytes(csms.pid)
        probe = await BenchCharger.open(csms.ocpp_url, PROBE, None, stats)
        probe.phase = "warmup"
        await probe.boot()
        await probe_heartbeats(probe, 20, 0.01)
        probe.phase = "baseline"
        started = time.perf_counter()
        await probe_heartbeats(probe, args.probe_samples, 0.01)
        print_phase(stats, "baseline", time.perf_counter() - started,
                    "baseline: the probe alone, Heartbeat after Heartbeat")

        rss_before = rss_bytes(csms.pid)
        fleet, connect_s, retries = await connect_fleet(csms.ocpp_url, fleet_ids, keys,
                                                        stats, "connect")
        await asyncio.sleep(2)  # the backend's GetConfiguration round trips settle
        rss_after = rss_bytes(csms.pid)
        print_phase(stats, "connect", connect_s,
                    f"first connect: {len(fleet)} chargers "
                    f"({'backend-generated keys' if keys else 'no password'}) connected at "
                    f"once, all booted in {connect_s:.2f} s ({retries} attempts retried)")
        print(f"  backend RSS: idle {rss_idle / 2**20:.1f} MiB, before {rss_before / 2**20:.1f}"
              f" MiB, with the fleet {rss_after / 2**20:.1f} MiB: "
              f"{(rss_after - rss_before) / max(1, len(fleet)) / 1024:.1f} KiB per connected "
              f"charger")

        for charger in fleet:
            charger.phase = "sessions"
        probe.phase = "probe"
        stop = asyncio.Event()
        probing = asyncio.create_task(probe_heartbeats(probe, None, args.probe_gap, stop))
        started = time.perf_counter()
        results = await asyncio.gather(
            *(session(charger, args.meter_values, args.interval) for charger in fleet),
            return_exceptions=True)
        sessions_s = time.perf_counter() - started
        stop.set()
        await probing
        failures = [r for r in results if isinstance(r, BaseException)]
        print_phase(stats, "sessions", sessions_s,
                    f"sessions: {len(fleet)} chargers, MeterValues every {args.interval:g} s "
                    f"(about {len(fleet) / args.interval:.0f} msg/s offered)")
        print_phase(stats, "probe", sessions_s, "  the probe beside them")
        if failures:
            print(f"  {len(failures)} sessions failed, first: {failures[0]!r}")
        await close_all(fleet)
        await probe.close()

    if keys is None:
        no_password_s = await storms_after_restart(db, fleet_ids, None, stats, "storm",
                                                   "no passwords")
        print(f"boot storm right after a backend restart, {len(fleet_ids)} chargers: "
              f"{no_password_s:.2f} s without passwords")
    else:
        generated_s = await storms_after_restart(
            db, fleet_ids, keys, stats, "generated",
            "backend-generated keys (salted SHA-256)")
        chosen_s = await storms_after_restart(
            db, fleet_ids, dict.fromkeys(fleet_ids, args.password), stats, "chosen",
            "operator-chosen passwords (salted scrypt)")
        print(f"boot storm right after a backend restart, {len(fleet_ids)} chargers: "
              f"{generated_s:.2f} s with backend-generated keys, {chosen_s:.2f} s with "
              "operator-chosen passwords (goal: < 10 s)")
    print(f"CALLERRORs: {stats.errors}")


@contextlib.contextmanager
def private_postgres() -> Iterator[str]:
    """A throwaway PostgreSQL (the tests' helper), made durable as a production one is
    (the tests run theirs without fsync)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    import psycopg
    from pg import postgres_server

    with postgres_server() as server:
        with psycopg.connect(host=server.host, port=server.port, user=server.user,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET fsync = on")
            conn.execute("ALTER SYSTEM SET full_page_writes = on")
            conn.execute("SELECT pg_reload_conf()")
        yield server.create_database("csms_bench")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=300, help="the probe included")
    parser.add_argument("--meter-values", type=int, default=6, help="per charger")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between MeterValues")
    parser.add_argument("--password", default="bench-secret-1234",
                        help="the operator-chosen password of the scrypt storm (every "
                             "charger's)")
    parser.add_argument("--no-password", action="store_true",
                        help="chargers without passwords (one storm after a restart)")
    parser.add_argument("--probe-samples", type=int, default=200)
    parser.add_argument("--probe-gap", type=float, default=0.2,
                        help="seconds between the probe's Heartbeats beside the fleet")
    parser.add_argument("--db", default=None, help="database (default: a temporary SQLite)")
    parser.add_argument("--postgres", action="store_true",
                        help="a private PostgreSQL server for the run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="csms-bench-") as tmp, \
            contextlib.ExitStack() as stack:
        db = args.db or (stack.enter_context(private_postgres()) if args.postgres
                         else str(Path(tmp) / "bench.sqlite3"))
        print(f"backend: {sa.make_url(db).get_backend_name() if '://' in db else 'sqlite'}; "
              f"chargers: {args.chargers}; load generator in this process (pid {os.getpid()}),"
              f" same machine")
        print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
        prepare_database(db, args.chargers)
        keys = None
        if not args.no_password:
            # Each charger's own AuthorizationKey, generated by the backend.
            keys = {f"BENCH{n:04d}": generate_password() for n in range(1, args.chargers)}
            set_fleet_passwords(db, keys)
        asyncio.run(main_async(args, db, keys))
        print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
