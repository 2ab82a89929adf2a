"""Chaos between the station and the backend: does any charging session get lost on the way?

Everything runs on 127.0.0.1, each process started and stopped by this script by its pid: the
backend (``chargerfw csms serve`` on a SQLite file, the charger, a tariff and an eMSP partner
registered first), the station (``chargerfw run`` on simulated hardware, hw/stations/sim.toml),
a TCP proxy of ours between them, and an eMSP registered over OCPI whose card is used.
``--sessions`` sessions are driven through the station's control socket (a card tap, the plug,
the vehicle charging for a moment, then a stop by a second tap, by unplugging, or by the eMSP's
STOP_SESSION, which falls back to unplugging when the backend cannot reach the station) while
a seeded random schedule, printed as it goes, cuts the link (and keeps it down a while),
swallows the requests or the answers (held, then the link cut with them), delays the traffic,
and SIGKILLs the station or the backend (each restarted after a short pause on its state).

Then everything is healed, the station's outbox is given a bounded time to drain, both
processes are stopped and the station's store is compared with the backend's database.
Printed, as numbers: sessions lost (a station transaction the backend does not have, or has
not stopped), duplicated (backend transactions no station transaction is), stuck in the
outbox (a session's message pending or given up), stop reasons and meterStops that differ,
meter readings going backwards within a session and between consecutive sessions on the
connector, and the orphans the backend closed itself. The exit status is 1 unless lost,
duplicated, stuck and both backwards counts are all 0.

    python bench/chaos.py --sessions 20 [--seed N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from station_common import SIM_TOML, child_env, free_port

from chargerfw.sim.workdir import kept_or_temporary_dir

CHARGER = "CHAOSCP1"
PASSWORD = "chaos-station-secret"
TAG = "04CA05CA05"  # an eMSP's card, so its sessions can be stopped remotely (OCPI)
EMSP = ("DE", "EMS")
EMSP_TOKEN_B = "chaos-emsp-token-b"
OCPI = "/ocpi/2.2.1"
LOCATION = "CHAOS-LOC"
TARIFF = "CHAOS-T"
CONNECTOR = 1
ENERGY = "Energy.Active.Import.Register"
ORPHAN_REMARK = "closed by the backend"
UP, DOWN = "station->backend", "backend->station"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---- settings and figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChaosSettings:
    """How many sessions, how hard the schedule hits and how long things may take."""

    sessions: int = 20
    seed: int | None = None  # None: a fresh one, printed
    charge_s: tuple[float, float] = (0.5, 2.5)  # how long a vehicle draws in a session
    fault_gap_s: tuple[float, float] = (1.5, 5.0)  # between two faults
    down_s: tuple[float, float] = (0.2, 3.0)  # a cut link stays down, a proxy holds traffic
    delay_s: tuple[float, float] = (0.1, 1.5)  # added to every chunk while delaying
    kill_pause_s: tuple[float, float] = (0.1, 1.5)  # a killed process stays down
    drain_timeout_s: float = 240.0
    session_timeout_s: float = 30.0  # one step of a session (the start, the stop) at most
    workdir: Path | None = None  # kept when given; a temporary directory otherwise
    verbose: bool = True


@dataclass
class ChaosFigures:
    """What the comparison found; ``ok`` when nothing was lost, doubled, stuck or backwards."""

    seed: int
    sessions_driven: int = 0
    station_transactions: int = 0
    backend_transactions: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    stop_reasons_differ: int = 0
    meter_stop_differs: int = 0
    backwards_within: int = 0
    backwards_between: int = 0
    orphans_closed: int = 0
    notifications_undelivered: int = 0  # status notifications of no session (not counted)
    faults: dict[str, int] = field(default_factory=dict)
    stops: dict[str, int] = field(default_factory=dict)  # how the sessions were ended
    elapsed_s: float = 0.0
    problems: list[str] = field(default_factory=list)  # one line per finding, for a human

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.stuck or self.backwards_within
                    or self.backwards_between)

    def summary(self) -> str:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults.items())) or "none"
        stops = ", ".join(f"{k} {v}" for k, v in sorted(self.stops.items())) or "none"
        return "\n".join([
            f"seed {self.seed}: {self.sessions_driven} sessions driven in {self.elapsed_s:.0f} s",
            f"  faults: {faults}",
            f"  stopped by: {stops}",
            f"  station transactions  {self.station_transactions:>6}",
            f"  backend transactions  {self.backend_transactions:>6}",
            f"  lost                  {self.lost:>6}",
            f"  duplicated            {self.duplicated:>6}",
            f"  stuck in the outbox   {self.stuck:>6}",
            f"  stop reasons differ   {self.stop_reasons_differ:>6}",
            f"  meterStop differs     {self.meter_stop_differs:>6}",
            f"  backwards in session  {self.backwards_within:>6}",
            f"  backwards between     {self.backwards_between:>6}",
            f"  orphans closed        {self.orphans_closed:>6}",
            f"  notifications unsent  {self.notifications_undelivered:>6}  (no session's)",
            "  result: " + ("OK" if self.ok else "FAILED"),
        ])


# ---- the comparison ----------------------------------------------------------------------------


def _rows(db: Path, query: str, *args: Any) -> list[sqlite3.Row]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        conn.row_factory = sqlite3.Row
        return list(conn.execute(query, args))
    finally:
        conn.close()


def _wh(value: float, unit: str) -> float:
    return value * 1000 if unit == "kWh" else value


def _backwards(readings: list[float]) -> bool:
    return any(later < earlier for earlier, later in zip(readings, readings[1:], strict=False))


def compare_stores(station_db: Path, backend_db: Path, charge_point_id: str,
                   figures: ChaosFigures) -> ChaosFigures:
    """Fill ``figures`` from the station's store and the backend's database (both SQLite,
    read only, with both processes stopped)."""
    station = _rows(station_db, "SELECT * FROM transactions ORDER BY local_id")
    unsent = _rows(station_db, "SELECT seq, local_tx_id, action, state, last_error FROM outbox "
                               "WHERE state != 'delivered' ORDER BY seq")
    backend = {r["id"]: r for r in _rows(
        backend_db, "SELECT * FROM transactions WHERE charge_point_id = ? ORDER BY id",
        charge_point_id)}
    readings: dict[int, list[tuple[str, float]]] = {}
    for r in _rows(backend_db, "SELECT transaction_id, timestamp, value, unit FROM meter_values "
                               "WHERE charge_point_id = ? AND measurand = ? AND phase = '' "
                               "AND transaction_id IS NOT NULL", charge_point_id, ENERGY):
        readings.setdefault(r["transaction_id"], []).append(
            (str(r["timestamp"]), _wh(r["value"], r["unit"])))

    figures.station_transactions = len(station)
    figures.backend_transactions = len(backend)
    for m in unsent:
        if m["local_tx_id"] is None:
            figures.notifications_undelivered += 1
            if figures.notifications_undelivered == 1:  # the others are like it
                figures.problems.append(f"outbox {m['seq']} {m['action']} (no session) is "
                                        f"{m['state']} ({m['last_error']})")
        else:
            figures.stuck += 1
            figures.problems.append(f"outbox {m['seq']} {m['action']} of local tx "
                                    f"{m['local_tx_id']} is {m['state']} ({m['last_error']})")
    stuck_txs = {m["local_tx_id"] for m in unsent if m["local_tx_id"] is not None}

    claimed: set[int] = set()
    for tx in station:
        name = f"local tx {tx['local_id']}"
        b = backend.get(tx["backend_tx_id"]) if tx["backend_tx_id"] is not None else None
        if b is not None:
            claimed.add(b["id"])
        if tx["local_id"] in stuck_txs:
            continue  # counted as stuck
        if tx["state"] != "stopped":
            figures.lost += 1
            figures.problems.append(f"{name} is still open at the station")
            continue
        if b is None:
            figures.lost += 1
            figures.problems.append(f"{name} (backend id {tx['backend_tx_id']}) is not at the "
                                    "backend")
            continue
        if b["stop_time"] is None:
            figures.lost += 1
            figures.problems.append(f"{name} = backend {b['id']} was never stopped there")
            continue
        station_reason = tx["stop_reason"] or "Local"
        if station_reason != b["stop_reason"]:
            figures.stop_reasons_differ += 1
            figures.problems.append(f"{name} = backend {b['id']}: stopped {station_reason} at "
                                    f"the station, {b['stop_reason']} at the backend "
                                    f"({b['remark']})")
        if tx["meter_stop_wh"] != b["meter_stop"]:
            figures.meter_stop_differs += 1
            figures.problems.append(f"{name} = backend {b['id']}: meterStop "
                                    f"{tx['meter_stop_wh']} at the station, {b['meter_stop']} "
                                    "at the backend")
        if b["meter_start"] != tx["meter_start_wh"]:
            figures.problems.append(f"{name} = backend {b['id']}: meterStart "
                                    f"{tx['meter_start_wh']} at the station, "
                                    f"{b['meter_start']} at the backend")

    for b in backend.values():
        if b["id"] not in claimed:
            figures.duplicated += 1
            figures.problems.append(f"backend {b['id']} (start {b['start_time']}, meterStart "
                                    f"{b['meter_start']}) is no station transaction")
        if (b["remark"] or "").startswith(ORPHAN_REMARK):
            figures.orphans_closed += 1
        series = [float(b["meter_start"])]
        series += [wh for _, wh in sorted(readings.get(b["id"], []))]
        if b["meter_stop"] is not None:
            series.append(float(b["meter_stop"]))
        if _backwards(series):
            figures.backwards_within += 1
            figures.problems.append(f"backend {b['id']}: readings go backwards: {series}")

    for tx in station:
        series = [tx["meter_start_wh"], tx["last_meter_wh"], tx["meter_stop_wh"]]
        if _backwards([float(v) for v in series if v is not None]):
            figures.backwards_within += 1
            figures.problems.append(f"local tx {tx['local_id']}: readings go backwards at the "
                                    f"station: {series}")

    def between(label: str, sessions: list[tuple[int, float, float | None]]) -> None:
        """(id, meterStart, last reading) in the order the sessions ran on the connector."""
        previous_end: float | None = None
        for ident, start, end in sessions:
            if previous_end is not None and start < previous_end:
                figures.backwards_between += 1
                figures.problems.append(f"{label} {ident}: meterStart {start} below the "
                                        f"previous session's last reading {previous_end}")
            previous_end = max(v for v in (start, end, previous_end) if v is not None)

    between("local tx", [(tx["local_id"], tx["meter_start_wh"],
                          tx["meter_stop_wh"] if tx["meter_stop_wh"] is not None
                          else tx["last_meter_wh"])
                         for tx in station if tx["connector_id"] == CONNECTOR])
    between("backend", [(b["id"], b["meter_start"], b["meter_stop"] if b["meter_stop"]
                         is not None else b["meter_last"])
                        for b in sorted(backend.values(), key=lambda b: (
                            _when(b["start_time"]), b["id"]))
                        if b["connector_id"] == CONNECTOR])
    return figures


def _when(stamp: Any) -> datetime:
    return stamp if isinstance(stamp, datetime) else datetime.fromisoformat(str(stamp))


# ---- the processes -----------------------------------------------------------------------------


def chargerfw(*args: str) -> list[str]:
    return [sys.executable, "-m", "chargerfw", *args]


def run_cli(*args: str) -> str:
    done = subprocess.run(chargerfw(*args), capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL, env=child_env())
    if done.returncode != 0:
        raise RuntimeError(f"chargerfw {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class Child:
    """One of our child processes, restarted on the same state; signalled by its pid only."""

    def __init__(self, name: str, argv: list[str], log_path: Path,
                 env: dict[str, str]) -> None:
        self.name, self.argv, self.log_path, self.env = name, argv, log_path, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running
        with open(self.log_path, "ab") as out:
            out.write(f"\n==== start {self.starts + 1} ====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, env=self.env)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    async def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            self.kill()
        return self.proc.returncode

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


async def wait_port(port: int, child: Child, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{child.name} did not listen on {port} in time:\n{child.tail()}")


class StationGone(Exception):
    """The station's control socket does not answer (killed, restarting)."""


async def ctl(socket_path: Path, method: str, timeout_s: float = 10.0, **params: Any) -> Any:
    from chargerfw import control

    try:
        return await asyncio.to_thread(control.call, socket_path, method,
                                       timeout_s=timeout_s, **params)
    except (control.ControlUnavailable, ConnectionError, TimeoutError, OSError) as exc:
        raise StationGone(f"{method}: {exc}") from exc


def write_station_config(state_dir: Path, url: str) -> Path:
    """hw/stations/sim.toml pointed at ``url``, its state in ``state_dir``, meter values every
    second, and offline starts allowed (a tap while the link is down still charges)."""
    import tomlkit

    from chargerfw.config import load_config

    doc = tomlkit.parse(SIM_TOML.read_text())
    doc["station"]["id"] = CHARGER
    doc["ocpp"] = {"url": url, "security_profile": 1, "password": PASSWORD,
                   "keys": {"MeterValueSampleInterval": 1, "HeartbeatInterval": 300,
                            "AllowOfflineTxForUnknownId": True,
                            "LocalAuthorizeOffline": True}}
    doc["storage"] = {"path": str(state_dir / "station.db")}
    doc["security"] = {"certificates_dir": str(state_dir / "certs")}
    meter = doc["connector"][0]["meter"]
    meter["tcp_port"] = free_port()
    meter["poll_interval_s"] = 0.5
    path = state_dir / "station.toml"
    path.write_text(tomlkit.dumps(doc))
    load_config(str(path))  # a ConfigError here names the problem
    return path


# ---- the proxy ---------------------------------------------------------------------------------


class ChaosProxy:
    """A TCP relay between the station and the backend's OCPP port that can cut every link
    (and refuse new ones for a while), hold one direction's bytes (never delivered: the link
    is cut after), and delay every chunk."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.down = False
        self.held: set[str] = set()
        self.delay_s = 0.0
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def heal(self) -> None:
        self.down, self.delay_s = False, 0.0
        self.held.clear()

    def cut(self) -> None:
        for client, upstream in list(self._links):
            for writer in (client, upstream):
                writer.transport.abort()
        self._links.clear()
        self.held.clear()

    async def _accept(self, client_r: asyncio.StreamReader,
                      client_w: asyncio.StreamWriter) -> None:
        if self.down:
            client_w.transport.abort()
            return
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.transport.abort()
            return
        link = (client_w, up_w)
        self._links.add(link)
        await asyncio.gather(self._pump(client_r, up_w, UP, link),
                             self._pump(up_r, client_w, DOWN, link))

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: str,
                    link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        try:
            while data := await src.read(65536):
                if direction in self.held:
                    continue  # swallowed; the link is cut once the hold ends
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(link)
            for writer in link:
                writer.transport.abort()


# ---- the eMSP (for remote stops) ---------------------------------------------------------------


def ocpi_auth(token: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


class Emsp:
    """An eMSP on loopback, registered with the backend over the credentials handshake: it
    owns the card and sends STOP_SESSION; pushes and command results it takes and forgets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.token_c = ""
        self.results: list[dict[str, Any]] = []
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        from chargerfw.timestamps import iso_utc

        expected = ocpi_auth(EMSP_TOKEN_B)["Authorization"]

        def envelope(data: Any, code: int = 1000, http: int = 200) -> JSONResponse:
            return JSONResponse({"data": data, "status_code": code, "status_message": "Success",
                                 "timestamp": iso_utc(time.time())}, status_code=http)

        async def versions(request: Request) -> JSONResponse:
            if request.headers.get("Authorization") != expected:
                return envelope(None, 2000, 401)
            return envelope([{"version": "2.2.1", "url": f"{self.base}/2.2.1"}])

        async def details(request: Request) -> JSONResponse:
            if request.headers.get("Authorization") != expected:
                return envelope(None, 2000, 401)
            return envelope({"version": "2.2.1", "endpoints": [
                {"identifier": module, "role": "RECEIVER", "url": f"{self.base}/{module}"}
                for module in ("credentials", "sessions", "cdrs")]})

        async def receive(request: Request) -> JSONResponse:
            if request.url.path.startswith("/results/"):
                self.results.append(await request.json())
            return envelope(None)

        return Starlette(routes=[
            Route("/versions", versions), Route("/2.2.1", details),
            Route("/{rest:path}", receive, methods=["PUT", "PATCH", "POST", "DELETE"])])

    async def start(self) -> None:
        import uvicorn

        self._server = uvicorn.Server(uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_level="warning",
            lifespan="off", access_log=False))
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task

    async def register(self, api_url: str, token_a: str) -> None:
        """The credentials handshake, then the card pushed into the backend's tokens."""
        import httpx

        from chargerfw.timestamps import iso_utc

        async with httpx.AsyncClient(base_url=api_url, timeout=10) as http:
            response = await http.post(f"{OCPI}/credentials", headers=ocpi_auth(token_a), json={
                "token": EMSP_TOKEN_B, "url": f"{self.base}/versions",
                "roles": [{"role": "EMSP", "country_code": EMSP[0], "party_id": EMSP[1],
                           "business_details": {"name": "Chaos eMSP"}}]})
            if response.status_code != 200:
                raise RuntimeError(f"the eMSP's registration failed: {response.text}")
            self.token_c = str(response.json()["data"]["token"])
            token = {"country_code": EMSP[0], "party_id": EMSP[1], "uid": TAG, "type": "RFID",
                     "contract_id": f"{EMSP[0]}-{EMSP[1]}-C0CA05CA05", "issuer": "Chaos eMSP",
                     "valid": True, "whitelist": "ALWAYS", "last_updated": iso_utc(time.time())}
            response = await http.put(f"{OCPI}/tokens/{EMSP[0]}/{EMSP[1]}/{TAG}",
                                      headers=ocpi_auth(self.token_c), json=token)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"the eMSP's token was refused: {response.text}")

    async def stop_session(self, api_url: str, session_id: str, n: int) -> str:
        """STOP_SESSION; the backend's immediate answer (ACCEPTED, REJECTED, ...)."""
        import httpx

        async with httpx.AsyncClient(base_url=api_url, timeout=5) as http:
            response = await http.post(f"{OCPI}/commands/STOP_SESSION",
                                       headers=ocpi_auth(self.token_c), json={
                "response_url": f"{self.base}/results/{n}", "session_id": session_id})
            body = response.json()
            return str((body.get("data") or {}).get("result", body.get("status_code")))


# ---- the run -----------------------------------------------------------------------------------


class ChaosRun:
    def __init__(self, settings: ChaosSettings, workdir: Path, seed: int) -> None:
        self.settings = settings
        self.dir = workdir
        self.seed = seed
        self.faults_rng = random.Random(seed)
        self.sessions_rng = random.Random(seed + 1)
        self.figures = ChaosFigures(seed=seed)
        self.backend_db = workdir / "csms.sqlite3"
        self.ports = {"ocpp": free_port(), "api": free_port(), "files": free_port()}
        # A short directory: the control socket's path must fit a sockaddr_un.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="cfw-chaos-", dir="/tmp"))
        self.socket_path = self.runtime_dir / "control.sock"
        self.proxy = ChaosProxy(self.ports["ocpp"])
        self.backend = Child("backend", chargerfw(
            "csms", "serve", "--db", str(self.backend_db),
            "--ocpp-port", str(self.ports["ocpp"]), "--api-port", str(self.ports["api"]),
            "--files-port", str(self.ports["files"]),
            "--allow-outbound-network", "127.0.0.0/8"), workdir / "backend.log", child_env())
        self.emsp = Emsp()
        self.station: Child | None = None
        self.healing = False
        self.session_starts = 0  # the station's start count when the session began
        self.started_at = time.monotonic()

    def say(self, message: str) -> None:
        if self.settings.verbose:
            log(message)

    def count(self, fault: str) -> None:
        self.figures.faults[fault] = self.figures.faults.get(fault, 0) + 1

    # -- set-up ----------------------------------------------------------------------------

    def provision(self) -> None:
        db = str(self.backend_db)
        run_cli("csms", "tariff", "add", TARIFF, "--db", db, "--energy", "0.30", "--vat", "21")
        run_cli("csms", "charger", "add", CHARGER, "--db", db, "--password", PASSWORD,
                "--location-id", LOCATION, "--name", "Chaos", "--address", "Stationsplein 1",
                "--city", "Utrecht", "--postal-code", "3511", "--country", "NLD",
                "--coordinates", "52.08917,5.11028", "--time-zone", "Europe/Amsterdam",
                "--tariff", TARIFF)
        out = run_cli("csms", "partner", "add", "Chaos eMSP", "--db", db, "--party",
                      "/".join(EMSP))
        self.token_a = out.split("TOKEN_A:")[1].split()[0]
        config = write_station_config(self.dir, f"ws://127.0.0.1:{self.proxy.port}/ocpp")
        self.station = Child("station", chargerfw("run", "--config", str(config)),
                             self.dir / "station.log", child_env(self.runtime_dir))

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    async def start_backend(self) -> None:
        self.backend.start()
        await wait_port(self.ports["ocpp"], self.backend)
        await wait_port(self.ports["api"], self.backend)

    async def start_station(self) -> None:
        assert self.station is not None
        self.station.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.station.running:
                raise RuntimeError(f"the station exited:\n{self.station.tail()}")
            with contextlib.suppress(StationGone):
                await ctl(self.socket_path, "status", timeout_s=2)
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the station did not open its control socket:\n{self.station.tail()}")

    # -- the fault schedule ----------------------------------------------------------------

    async def faults(self) -> None:
        """Hit the link or a process at random moments until the healing starts."""
        rng, s = self.faults_rng, self.settings
        kinds = ["cut", "swallow_requests", "swallow_answers", "delay", "kill_station",
                 "kill_backend"]
        weights = [3, 2, 2, 2, 2, 2]
        while True:
            await asyncio.sleep(rng.uniform(*s.fault_gap_s))
            if self.healing:
                return
            kind = rng.choices(kinds, weights)[0]
            hold = rng.uniform(*s.down_s)
            self.count(kind)
            if kind == "cut":
                self.say(f"fault: link cut, down {hold:.1f} s")
                self.proxy.down = True
                self.proxy.cut()
                await asyncio.sleep(hold)
                self.proxy.down = False
            elif kind in ("swallow_requests", "swallow_answers"):
                direction = UP if kind == "swallow_requests" else DOWN
                self.say(f"fault: {direction} swallowed for {hold:.1f} s, then cut")
                self.proxy.held.add(direction)
                await asyncio.sleep(hold)
                self.proxy.cut()
            elif kind == "delay":
                delay = rng.uniform(*s.delay_s)
                self.say(f"fault: every chunk delayed {delay:.2f} s for {hold:.1f} s")
                self.proxy.delay_s = delay
                await asyncio.sleep(hold)
                self.proxy.delay_s = 0.0
            else:
                child = self.station if kind == "kill_station" else self.backend
                assert child is not None
                pause = rng.uniform(*s.kill_pause_s)
                self.say(f"fault: SIGKILL {child.name}, back after {pause:.1f} s")
                child.kill()
                await asyncio.sleep(pause)
                await (self.start_station() if child is self.station else self.start_backend())

    # -- the sessions ----------------------------------------------------------------------

    async def connector(self) -> dict[str, Any]:
        status = await ctl(self.socket_path, "status", timeout_s=5)
        return dict(status["connectors"][0])

    async def wait_connector(self, predicate: Callable[[dict[str, Any]], Any],
                             what: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.settings.session_timeout_s
        last: dict[str, Any] | None = None
        assert self.station is not None
        while time.monotonic() < deadline:
            if self.station.starts != self.session_starts:  # it forgot the vehicle
                raise StationGone(f"restarted while waiting for {what}")
            with contextlib.suppress(StationGone):
                last = await self.connector()
                if predicate(last):
                    return last
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{what} not reached; last: "
                           f"{ {k: last.get(k) for k in ('status', 'phase', 'transaction')} if last else None}")

    async def settle(self) -> None:
        """Back to an idle connector with no vehicle (a restarted station comes up without
        one; a stopped session may leave it plugged)."""
        deadline = time.monotonic() + self.settings.session_timeout_s
        while time.monotonic() < deadline:
            try:
                c = await self.connector()
                if c["transaction"] is None and c["status"] == "Available":
                    return
                if c["transaction"] is not None:
                    await ctl(self.socket_path, "sim.tap", uid=TAG)
                    await asyncio.sleep(0.5)
                await ctl(self.socket_path, "sim.unplug")
            except StationGone:
                pass
            await asyncio.sleep(0.2)
        raise TimeoutError("the connector did not come back to Available with no transaction")

    async def one_session(self, n: int) -> bool:
        """Drive one session; True when the station started a transaction for it."""
        rng = self.sessions_rng
        stop_by = rng.choice(["tap", "unplug", "remote"])
        charge_s = rng.uniform(*self.settings.charge_s)
        started = False
        try:
            await self.settle()
            assert self.station is not None
            self.session_starts = self.station.starts
            await ctl(self.socket_path, "sim.tap", uid=TAG)
            await ctl(self.socket_path, "sim.plug")
            await ctl(self.socket_path, "sim.charge")
            await self.wait_connector(lambda c: c["transaction"] is not None,
                                      "a transaction started")
            started = True
            await asyncio.sleep(charge_s)
            if stop_by == "remote" and not await self.remote_stop(n):
                # Unplugging ends it either way; a tap could start another session.
                stop_by = "unplug (remote stop failed)"
            if stop_by == "tap":
                await ctl(self.socket_path, "sim.tap", uid=TAG)
            elif stop_by.startswith("unplug"):
                await ctl(self.socket_path, "sim.unplug")
            await self.wait_connector(lambda c: c["transaction"] is None, "the session stopped")
            if not stop_by.startswith("unplug"):
                await ctl(self.socket_path, "sim.unplug")
            self.figures.stops[stop_by] = self.figures.stops.get(stop_by, 0) + 1
            self.say(f"session {n}: charged {charge_s:.1f} s, stopped by {stop_by}")
        except (StationGone, TimeoutError) as exc:
            self.say(f"session {n}: interrupted ({exc})")
        return started

    async def remote_stop(self, n: int) -> bool:
        """STOP_SESSION from the eMSP for the session charging now; False when it did not stop
        it within a few seconds (the link or the backend down, the start not confirmed yet)."""
        import httpx

        c = await self.connector()
        tx_id = c["transaction"]["transaction_id"] if c["transaction"] else None
        if tx_id is None:
            self.say(f"session {n}: no STOP_SESSION, the start is not confirmed yet")
            return False
        try:
            rows = _rows(self.backend_db, "SELECT session_id FROM transactions WHERE id = ?",
                         tx_id)
            if not rows:
                self.say(f"session {n}: the backend has no transaction {tx_id}")
                return False
            answer = await self.emsp.stop_session(self.api_url, rows[0]["session_id"], n)
        except (httpx.HTTPError, OSError, sqlite3.Error, ValueError) as exc:
            self.say(f"session {n}: STOP_SESSION failed ({type(exc).__name__}: {exc})")
            return False
        if answer != "ACCEPTED":
            self.say(f"session {n}: STOP_SESSION answered {answer}")
            return False
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if (await self.connector())["transaction"] is None:
                return True
            await asyncio.sleep(0.1)
        self.say(f"session {n}: STOP_SESSION accepted, the session still runs")
        return False

    async def drive(self) -> None:
        n = attempts = 0
        while n < self.settings.sessions:
            attempts += 1
            if attempts > 3 * self.settings.sessions + 10:
                raise RuntimeError(f"only {n} sessions started in {attempts} attempts")
            if await self.one_session(n + 1):
                n += 1
        self.figures.sessions_driven = n

    # -- the end ---------------------------------------------------------------------------

    async def heal_and_drain(self, faults: asyncio.Task[None]) -> None:
        self.healing = True
        await faults  # the fault under way finishes (a killed process is back)
        self.proxy.heal()
        assert self.station is not None
        if not self.backend.running:
            await self.start_backend()
        if not self.station.running:
            await self.start_station()
        with contextlib.suppress(TimeoutError, StationGone):
            await self.settle()  # a session the driver left charging (interrupted) ends
        self.say("healed; waiting for the station's outbox to drain")
        deadline = time.monotonic() + self.settings.drain_timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(StationGone):
                status = await ctl(self.socket_path, "status", timeout_s=5)
                c = status["connectors"][0]
                if (status["backend"]["online"] and status["outbox"]["pending"] == 0
                        and c["transaction"] is None):
                    self.say("outbox drained")
                    return
            await asyncio.sleep(0.5)
        self.say("the outbox did not drain in time")

    async def run(self) -> ChaosFigures:
        await self.proxy.start()
        self.provision()
        assert self.station is not None
        try:
            await self.start_backend()
            await self.emsp.start()
            await self.emsp.register(self.api_url, self.token_a)
            await self.start_station()
            faults = asyncio.create_task(self.faults())
            try:
                await self.drive()
            finally:
                await self.heal_and_drain(faults)
            await self.station.stop()
            await self.backend.stop()
        finally:
            self.station.kill()
            self.backend.kill()
            await self.proxy.close()
            await self.emsp.stop()
            shutil.rmtree(self.runtime_dir, ignore_errors=True)
        self.figures.elapsed_s = time.monotonic() - self.started_at
        return compare_stores(self.dir / "station.db", self.backend_db, CHARGER, self.figures)


async def run_chaos(settings: ChaosSettings) -> ChaosFigures:
    """Run the chaos as ``settings`` say and return the comparison's figures."""
    seed = settings.seed if settings.seed is not None else random.SystemRandom().randrange(2**32)
    if settings.verbose:
        log(f"chaos: seed {seed}, {settings.sessions} sessions")
    with kept_or_temporary_dir(settings.workdir, "chargerfw-chaos-") as workdir:
        return await ChaosRun(settings, workdir, seed).run()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int,
                        default=int(os.environ.get("CHAOS_SESSIONS", "20")))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the databases and logs here")
    parser.add_argument("--json", action="store_true", help="the figures as one JSON line too")
    parser.add_argument("--quiet", action="store_true", help="no line per fault and session")
    args = parser.parse_args()
    figures = asyncio.run(run_chaos(ChaosSettings(
        sessions=args.sessions, seed=args.seed, workdir=args.workdir, verbose=not args.quiet)))
    for line in figures.problems[:50]:
        print("  " + line)
    print(figures.summary())
    if args.json:
        print(json.dumps({**asdict(figures), "ok": figures.ok}))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
