"""Several backend processes on one PostgreSQL database: real `chargerfw csms serve`
subprocesses on loopback, a charger double connected to one of them, commands sent to
another, one process SIGKILLed mid-run, and `serve --workers`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from csms_doubles import (
    EmspDouble,
    SimCharger,
    add_test_charger,
    ocpi_auth,
    running_emsp,
    settings_for,
    sim_charger,
    token_body,
)
from ocpp.v16 import call
from pg import PostgresServer, fresh_database
from websockets.asyncio.client import connect

import chargerfw
from chargerfw.cli.csms import csms as csms_cli
from chargerfw.csms.cluster import Cluster
from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpp_server import ChargerCallError, ChargerNotConnected
from chargerfw.csms.server import running_csms
from chargerfw.csms.site_balancer import SiteBalancer
from chargerfw.csms.store import AsyncStore, CpoIdentity, Party, Store
from chargerfw.csms.tables import backend_workers, cdrs, charge_points

ROOT = Path(chargerfw.__file__).resolve().parent.parent
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
LEASE_S = 3.0
V = "/ocpi/2.2.1"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Backend:
    process: subprocess.Popen[bytes]
    ocpp_port: int
    api_port: int
    admin_port: int
    log: Path

    @property
    def ocpp_url(self) -> str:
        return f"ws://127.0.0.1:{self.ocpp_port}/ocpp"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"


def start_backend(db_url: str, tmp_path: Path, name: str, *extra: str,
                  entry: tuple[str, ...] = ("-m", "chargerfw")) -> Backend:
    ocpp, api, admin, files = (_free_port() for _ in range(4))
    log = tmp_path / f"{name}.log"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])))
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, *entry, "csms", "serve", "--db", db_url,
             "--ocpp-port", str(ocpp), "--api-port", str(api), "--admin-port", str(admin),
             "--files-port", str(files), "--allow-outbound-network", "127.0.0.0/8",
             "--worker-lease", str(LEASE_S), "--token-pull-interval", "0",
             "--hub-pull-interval", "0", *extra],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    return Backend(process, ocpp, api, admin, log)


async def wait_serving(*backends: Backend, timeout_s: float = 40.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        for backend in backends:
            while True:
                if backend.process.poll() is not None:
                    raise AssertionError(f"backend exited:\n{backend.log.read_text()}")
                with contextlib.suppress(httpx.TransportError):
                    await client.get(f"{backend.admin_url}/chargepoints")
                    break
                assert time.monotonic() < deadline, backend.log.read_text()
                await asyncio.sleep(0.1)


def stop_backend(backend: Backend) -> None:
    if backend.process.poll() is None:
        backend.process.send_signal(signal.SIGTERM)
        try:
            backend.process.wait(20)
        except subprocess.TimeoutExpired:
            backend.process.kill()
            backend.process.wait()


@contextlib.contextmanager
def backends(db_url: str, tmp_path: Path, *names: str) -> Iterator[list[Backend]]:
    started = [start_backend(db_url, tmp_path, name) for name in names]
    try:
        yield started
    finally:
        for backend in started:
            stop_backend(backend)


def open_store(db_url: str) -> Store:
    engine = create_db_engine(db_url)
    upgrade_database(engine)
    return Store(engine, CpoIdentity("NL", "CFW", "chargerfw CSMS", "EUR"))


async def eventually(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.1)


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 10.0
                ) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        await asyncio.sleep(0.05)


def holder_pid(store: Store, charge_point_id: str) -> int | None:
    with store.engine.connect() as c:
        return c.execute(sa.select(backend_workers.c.pid).join(
            charge_points, charge_points.c.worker_id == backend_workers.c.id).where(
            charge_points.c.id == charge_point_id, charge_points.c.connected)).scalar()


def leader_pid(store: Store) -> int | None:
    with store.engine.connect() as c:
        return c.execute(sa.select(backend_workers.c.pid).where(
            backend_workers.c.leading)).scalar()


def worker_pids(store: Store) -> set[int]:
    with store.engine.connect() as c:
        return set(c.execute(sa.select(backend_workers.c.pid)).scalars())


@contextlib.asynccontextmanager
async def charger_at(backend: Backend, charge_point_id: str) -> AsyncIterator[SimCharger]:
    async with connect(f"{backend.ocpp_url}/{charge_point_id}",
                       subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        charger = SimCharger(charge_point_id, ws)
        task = asyncio.create_task(charger.start())
        try:
            yield charger
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def register_at(backend: Backend, store: Store, emsp: EmspDouble) -> str:
    """The eMSP registers through ``backend`` (any process serves OCPI), its token CARD1
    whitelisted; returns TOKEN_C."""
    partner_id, token_a = await asyncio.to_thread(
        store.add_partner, "Test eMSP", [Party(emsp.country_code, emsp.party_id, emsp.role)])
    async with httpx.AsyncClient(base_url=backend.api_url) as client:
        response = await client.post(f"{V}/credentials", headers=ocpi_auth(token_a), json={
            "token": emsp.token_b, "url": f"{emsp.base}/emsp/versions",
            "roles": [{"role": emsp.role, "party_id": emsp.party_id,
                       "country_code": emsp.country_code,
                       "business_details": {"name": "Test eMSP"}}]})
        assert response.status_code == 200, response.text
    card = m.Token.model_validate(token_body("CARD1") | {"last_updated": datetime.now(UTC)})
    await asyncio.to_thread(store.put_token, card, partner_id)
    return str(response.json()["data"]["token"])


@pytest.fixture
def cluster_db(pg: PostgresServer) -> Iterator[tuple[str, Store]]:
    url = fresh_database(pg)
    store = open_store(url)
    add_test_charger(store, "CP1", None)
    yield url, store
    store.engine.dispose()


async def test_answers_errors_and_timeouts_come_back_through_the_holder(
        cluster_db: tuple[str, Store]) -> None:
    """Two backends in this process on one database: B's requests to A's charger end as
    they would at A (result, CALLERROR, timeout, not connected)."""
    url, _ = cluster_db
    # A response timeout short enough to wait out, long enough for a loaded machine's
    # answers (a CALLERROR too) to beat it.
    settings = settings_for(url, worker_lease_s=2.0, worker_renew_s=0.4,
                            ocpp_response_timeout_s=3.0, files_port=None)
    async with running_csms(settings) as a, running_csms(settings) as b:
        assert not await b.ocpp.is_connected("CP1")
        with pytest.raises(ChargerNotConnected):
            await b.ocpp.reset("CP1")
        async with sim_charger(a, "CP1") as charger:
            charger.feature_profiles = "Core,SmartCharging"
            await until(lambda: b.ocpp.is_connected("CP1"), "CP1 connected, seen from B")
            assert "CP1" not in b.ocpp.connected
            assert await b.ocpp.get_configuration("CP1", ["SupportedFeatureProfiles"]) == \
                await a.ocpp.get_configuration("CP1", ["SupportedFeatureProfiles"])
            assert await b.ocpp.remote_start_transaction("CP1", "TAG1", 1) == "Accepted"
            with pytest.raises(ChargerCallError, match="NotImplemented"):
                await b.ocpp.call("CP1", call.DataTransfer(vendor_id="nobody"))
            charger.silent.add("Reset")
            asked = time.monotonic()
            with pytest.raises(TimeoutError):
                await b.ocpp.reset("CP1")
            assert 3.0 <= time.monotonic() - asked < 10.0
            # The charger reconnects, to B, while A still has its old connection: A lets go
            # of it, and A's requests now go through B.
            async with sim_charger(b, "CP1") as reconnected:
                async def let_go() -> bool:
                    return "CP1" not in a.ocpp.connected

                await until(let_go, "A closed the old connection")
                assert await a.ocpp.is_connected("CP1")
                assert await a.ocpp.remote_start_transaction("CP1", "TAG2", 1) == "Accepted"
                assert ("RemoteStartTransaction", {"id_tag": "TAG2", "connector_id": 1}) \
                    in reconnected.received
        async def gone() -> bool:
            return not await b.ocpp.is_connected("CP1")

        await until(gone, "CP1 disconnected, seen from B")


async def test_a_charger_on_one_process_is_commanded_through_another(
        cluster_db: tuple[str, Store], tmp_path: Path) -> None:
    url, store = cluster_db
    _, admin_token = store.create_admin_token("ops")
    admin = {"Authorization": f"Bearer {admin_token}"}
    with backends(url, tmp_path, "a", "b") as (a, b):
        async with running_emsp() as emsp, httpx.AsyncClient() as http:
            await wait_serving(a, b)
            token_c = await register_at(b, store, emsp)
            # Not connected anywhere: each process says so.
            for backend in (a, b):
                refused = await http.post(f"{backend.admin_url}/chargepoints/CP1/commands/reset",
                                          headers=admin, json={"type": "Soft"})
                assert refused.status_code == 409, refused.text
            async with charger_at(a, "CP1") as charger:
                await charger.boot()
                await charger.status(1, "Available")
                await eventually(lambda: holder_pid(store, "CP1") == a.process.pid,
                                 "CP1 held by A")
                # An OCPI command at B: accepted because the charger is connected (to A),
                # sent over A's connection, its result pushed to the eMSP.
                start = await http.post(
                    f"{b.api_url}{V}/commands/START_SESSION", headers=ocpi_auth(token_c),
                    json={"response_url": f"{emsp.base}/emsp/commands/START_SESSION/1",
                          "token": token_body("APP1") | {"type": "APP_USER"},
                          "location_id": "LOC1", "evse_uid": "CP1-1"})
                assert start.json()["data"]["result"] == "ACCEPTED", start.text
                result = await emsp.wait_for(
                    lambda r: r.path == "/emsp/commands/START_SESSION/1", timeout=10)
                assert result[0].body["result"] == "ACCEPTED"
                assert ("RemoteStartTransaction", {"id_tag": "APP1", "connector_id": 1}) \
                    in charger.received
                # Operator commands at B: the charger's answers come back to B.
                reset = await http.post(f"{b.admin_url}/chargepoints/CP1/commands/reset",
                                        headers=admin, json={"type": "Hard"})
                assert reset.status_code == 200, reset.text
                assert reset.json()["status"] == "Accepted"
                assert ("Reset", {"type": "Hard"}) in charger.received
                charger.answers["UnlockConnector"] = "UnlockFailed"
                unlock = await http.post(f"{b.admin_url}/chargepoints/CP1/commands/unlock",
                                         headers=admin, json={"connector": 1})
                assert unlock.status_code == 200, unlock.text
                assert unlock.json()["status"] == "UnlockFailed"
                for backend in (a, b):
                    shown = (await http.get(f"{backend.admin_url}/chargepoints/CP1",
                                            headers=admin)).json()
                    assert shown["connected"] is True
            # The charger left A: not connected at either process.
            await eventually(lambda: holder_pid(store, "CP1") is None, "CP1 released")
            refused = await http.post(f"{b.admin_url}/chargepoints/CP1/commands/reset",
                                      headers=admin, json={"type": "Soft"})
            assert refused.status_code == 409, refused.text


async def test_a_killed_process_loses_nothing_and_leadership_moves(
        cluster_db: tuple[str, Store], tmp_path: Path) -> None:
    url, store = cluster_db
    _, admin_token = store.create_admin_token("ops")
    admin = {"Authorization": f"Bearer {admin_token}"}
    with backends(url, tmp_path, "a") as (a,):
        await wait_serving(a)
        await eventually(lambda: leader_pid(store) == a.process.pid, "A leads")
        with backends(url, tmp_path, "b") as (b,):
            async with running_emsp() as emsp, httpx.AsyncClient() as http:
                await wait_serving(b)
                await register_at(b, store, emsp)
                async with charger_at(a, "CP1") as charger:
                    await charger.boot()
                    await charger.status(1, "Charging")
                    started = await charger.start_tx(1, "CARD1", 1000, T0)
                    await eventually(lambda: holder_pid(store, "CP1") == a.process.pid,
                                     "CP1 held by A")
                    await emsp.wait_for(lambda r: r.path.startswith("/emsp/sessions"),
                                        timeout=10)

                    a.process.send_signal(signal.SIGKILL)
                    a.process.wait()
                    # A call to a charger of the dead process is answered, once its lease
                    # runs out, not left hanging.
                    asked = time.monotonic()
                    refused = await http.post(
                        f"{b.admin_url}/chargepoints/CP1/commands/reset", headers=admin,
                        json={"type": "Soft"})
                    assert refused.status_code == 409, refused.text
                    assert refused.json()["status"] == "NotConnected"
                    assert time.monotonic() - asked < LEASE_S + 5
                # The charger reconnects, to B, and ends its session there.
                await eventually(lambda: leader_pid(store) == b.process.pid, "B leads")
                async with charger_at(b, "CP1") as charger:
                    await charger.boot()
                    await eventually(lambda: holder_pid(store, "CP1") == b.process.pid,
                                     "CP1 held by B")
                    await charger.stop_tx(started.transaction_id, 6000,
                                          T0 + timedelta(hours=1))
                    await charger.status(1, "Available")
                    # Pushes continue from the new leader: the session's CDR.
                    pushed = await emsp.wait_for(lambda r: r.path.startswith("/emsp/cdrs"),
                                                 timeout=10)
                    assert len(pushed) == 1
                    assert pushed[0].body["total_energy"] == 5.0
                    with store.engine.connect() as c:
                        assert c.execute(sa.select(sa.func.count()).select_from(cdrs)
                                         ).scalar() == 1
                    # A command sent through the survivor reaches the charger.
                    reset = await http.post(f"{b.admin_url}/chargepoints/CP1/commands/reset",
                                            headers=admin, json={"type": "Soft"})
                    assert reset.status_code == 200, reset.text
    assert worker_pids(store) == set()  # the dead process's lease was settled too


async def test_workers_share_the_ports_restart_and_stop_on_sigterm(
        cluster_db: tuple[str, Store], tmp_path: Path) -> None:
    url, store = cluster_db
    _, admin_token = store.create_admin_token("ops")
    supervisor = start_backend(url, tmp_path, "workers", "--workers", "2")
    try:
        await wait_serving(supervisor)
        pids = await eventually(lambda: len(worker_pids(store)) == 2 and worker_pids(store),
                                "two workers")
        assert supervisor.process.pid not in pids
        async with charger_at(supervisor, "CP1") as charger:
            assert (await charger.boot()).status == "Accepted"
        # A worker that dies is started again.
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        await eventually(lambda: len(worker_pids(store) - {victim}) == 2,
                         "a new worker beside the survivor", timeout_s=30)
        async with httpx.AsyncClient() as http:
            shown = await http.get(f"{supervisor.admin_url}/chargepoints/CP1",
                                   headers={"Authorization": f"Bearer {admin_token}"})
            assert shown.status_code == 200
        supervisor.process.send_signal(signal.SIGTERM)
        assert supervisor.process.wait(25) == 0
        assert worker_pids(store) - {victim} == set()  # stopped cleanly, leases given back
    finally:
        stop_backend(supervisor)


async def test_a_named_lock_is_held_by_one_process_at_a_time(
        cluster_db: tuple[str, Store]) -> None:
    _, store = cluster_db
    one, other = Cluster(store.engine), Cluster(store.engine)
    order: list[str] = []

    async def hold(cluster: Cluster, who: str, release: asyncio.Event) -> None:
        async with cluster.exclusive("site-allocation:S"):
            order.append(f"{who} in")
            await release.wait()
            order.append(f"{who} out")

    try:
        let_one_go, let_other_go, let_second_go = (asyncio.Event() for _ in range(3))
        first = asyncio.create_task(hold(one, "one", let_one_go))
        await eventually(lambda: order == ["one in"], "one holds the lock")
        waiting = asyncio.create_task(hold(other, "other", let_other_go))
        # A second task of the same process waits too (advisory locks are re-entrant
        # within one database session).
        same_process = asyncio.create_task(hold(one, "one again", let_second_go))
        await asyncio.sleep(0.5)
        assert order == ["one in"]
        # Another name is not held up.
        async with other.exclusive("site-allocation:T"):
            pass
        let_one_go.set()
        await first
        await eventually(lambda: len(order) == 3, "the next holder")
        assert order[2] in ("other in", "one again in")
        let_other_go.set()
        let_second_go.set()
        await asyncio.gather(waiting, same_process)
        assert sorted(order[1:]) == sorted(["one out", "other in", "other out",
                                            "one again in", "one again out"])
        # A process that goes away takes its locks with it.
        order.clear()
        never = asyncio.Event()
        stuck = asyncio.create_task(hold(one, "one", never))
        await eventually(lambda: order == ["one in"], "one holds the lock again")
        await one.close()
        async with asyncio.timeout(10):
            async with other.exclusive("site-allocation:S"):
                order.append("other after one left")
        assert order[-1] == "other after one left"
        stuck.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stuck
    finally:
        await one.close()
        await other.close()


class SlowChargers:
    """The OCPP side of two backend processes: every charger online, every profile
    accepted after a while, each send noted with the process that made it."""

    load_listener: object = None

    def __init__(self) -> None:
        self.sends: list[tuple[str, str, str]] = []  # (process, "begin"/"end", charger)

    def as_process(self, name: str) -> Any:
        chargers = self

        class Process:
            load_listener: object = None

            async def is_connected(self, charge_point_id: str) -> bool:
                return True

            async def change_configuration(self, charge_point_id: str, key: str,
                                           value: str) -> str:
                return "Accepted"

            async def set_charging_profile(self, charge_point_id: str, connector_id: int,
                                           profile: dict[str, Any]) -> str:
                chargers.sends.append((name, "begin", charge_point_id))
                await asyncio.sleep(0.3)
                chargers.sends.append((name, "end", charge_point_id))
                return "Accepted"

        return Process()


async def test_one_sites_allocation_runs_in_one_process_at_a_time(
        cluster_db: tuple[str, Store]) -> None:
    """Two processes asked at once to share out one site: the second runs after the first
    and finds its limits already sent; none of its sends overlaps the first's."""
    _, store = cluster_db
    add_test_charger(store, "CP2", None, location_id="LOC2")
    store.add_site("S", "Car park", 32)
    for cp_id in ("CP1", "CP2"):
        store.assign_site(cp_id, "S")
    chargers = SlowChargers()
    clusters = [Cluster(store.engine), Cluster(store.engine)]
    db = AsyncStore(store)
    try:
        balancers = [SiteBalancer(db, chargers.as_process(name), cluster.exclusive)
                     for name, cluster in zip(("A", "B"), clusters, strict=True)]
        await asyncio.gather(*(balancer.rebalance("S") for balancer in balancers))
        senders = [process for process, _, _ in chargers.sends]
        # Each idle charger is sent its TxDefaultProfile once, by whichever process ran
        # first; the other found them recorded.
        assert sorted(cp for _, step, cp in chargers.sends if step == "begin") == ["CP1", "CP2"]
        assert len(set(senders)) == 1, chargers.sends
    finally:
        for cluster in clusters:
            await cluster.close()
        db.close()


# `chargerfw csms serve` whose start stalls for a while after its worker lease is taken, as
# a start on a busy machine does, so that a signal lands in that window every time.
STALLED_START = """
import asyncio
from chargerfw.cli import console
from chargerfw.csms.cluster import Cluster

registering = Cluster.start

async def start_then_stall(self):
    await registering(self)
    print("lease taken", flush=True)
    await asyncio.sleep(3)

Cluster.start = start_then_stall
console()
"""


async def test_sigterm_while_starting_gives_the_lease_back(
        cluster_db: tuple[str, Store], tmp_path: Path) -> None:
    url, store = cluster_db
    backend = start_backend(url, tmp_path, "stalled", entry=("-c", STALLED_START))
    try:
        await eventually(lambda: "lease taken" in backend.log.read_text(), "the lease taken")
        assert worker_pids(store) == {backend.process.pid}
        backend.process.send_signal(signal.SIGTERM)
        assert backend.process.wait(25) == 0, backend.log.read_text()
        assert worker_pids(store) == set()
    finally:
        stop_backend(backend)


def test_workers_with_sqlite_are_refused(tmp_path: Path) -> None:
    result = CliRunner().invoke(csms_cli, ["serve", "--db", str(tmp_path / "csms.sqlite3"),
                                           "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers 2 needs PostgreSQL" in result.output
    assert not (tmp_path / "csms.sqlite3").exists()
