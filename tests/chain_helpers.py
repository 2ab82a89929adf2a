"""The whole chain on loopback for tests/test_chain_*.py: an eMSP double registered with the
real backend (chargerfw.csms) over the OCPI credentials handshake, and the real firmware
runtime (chargerfw.runtime) on simulated hardware connected to that backend's OCPP server.

Everything OCPI that a test reads goes through the typed spec models (``ok``), and what the
firmware said and heard on the OCPP link is read back from its own frame log
(``ocpp_exchanges``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from csms_doubles import (
    EmspDouble,
    Received,
    add_test_charger,
    csms_running,
    make_tariff,
    ocpi_auth,
    ok,
    register_emsp,
    running_emsp,
)
from fakes import wait_until
from runtime_helpers import ctl, running_station, sim_station_config, wait_status

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpi.commands import COMMAND_MODELS
from chargerfw.csms.server import RunningCsms
from chargerfw.runtime.station import StationRuntime

V = "/ocpi/2.2.1"
CHARGER = "CP1"
CHARGER_PASSWORD = "chain-s3cret-pass"
LOCATION = "LOC1"
EVSE_UID = f"{CHARGER}-1"
TARIFF = "T1"


def token_body(uid: str, whitelist: str, **extra: Any) -> dict[str, Any]:
    """An eMSP's OCPI Token (DE/EMS), validated by the spec model before it is sent."""
    body = {"country_code": "DE", "party_id": "EMS", "uid": uid, "type": "RFID",
            "contract_id": f"DE-EMS-{uid}", "issuer": "Test eMSP", "valid": True,
            "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z", **extra}
    return m.Token.model_validate(body).model_dump(mode="json", exclude_none=True)


@dataclass(frozen=True)
class OcppExchange:
    """One OCPP request and its answer as the firmware's frame log recorded them."""

    action: str
    direction: str  # "out": the firmware asked; "in": the backend asked the firmware
    request: dict[str, Any]
    response: dict[str, Any] | None  # None while unanswered (or a CALLERROR)


def ocpp_exchanges(runtime: StationRuntime, action: str) -> list[OcppExchange]:
    """Every ``action`` request in the firmware's frame log, paired with its CALLRESULT."""
    assert runtime.store is not None
    frames = [(f.direction, json.loads(f.frame)) for f in runtime.store.frame_log()]
    results = {(direction, msg[1]): msg[2] for direction, msg in frames if msg[0] == 3}
    exchanges = []
    for direction, msg in frames:
        if msg[0] == 2 and msg[2] == action:
            answer_direction = "in" if direction == "out" else "out"
            exchanges.append(OcppExchange(action, direction, msg[3],
                                          results.get((answer_direction, msg[1]))))
    return exchanges


@dataclass
class Chain:
    """A registered eMSP, the backend, and the firmware on simulated hardware."""

    csms: RunningCsms
    emsp: EmspDouble
    token_c: str  # what the eMSP uses to call the backend
    api: httpx.AsyncClient
    runtime: StationRuntime
    sock: Path  # the firmware's control socket
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def auth(self) -> dict[str, str]:
        return ocpi_auth(self.token_c)

    async def push_token(self, uid: str, whitelist: str) -> m.Token:
        """The eMSP PUTs a token into the backend's tokens Receiver (201: created)."""
        body = token_body(uid, whitelist)
        ok(await self.api.put(f"{V}/tokens/DE/EMS/{uid}", headers=self.auth, json=body),
           Any, http=201)
        stored = ok(await self.api.get(f"{V}/tokens/DE/EMS/{uid}", headers=self.auth),
                    m.Token)
        assert (stored.uid, stored.whitelist) == (uid, whitelist)
        return stored

    async def sessions(self) -> list[m.Session]:
        return ok(await self.api.get(f"{V}/sessions", headers=self.auth), list[m.Session])

    async def cdrs(self) -> list[m.CDR]:
        return ok(await self.api.get(f"{V}/cdrs", headers=self.auth), list[m.CDR])

    async def evse(self) -> m.EVSE:
        return ok(await self.api.get(f"{V}/locations/{LOCATION}/{EVSE_UID}",
                                     headers=self.auth), m.EVSE)

    async def command(self, name: str, body: dict[str, Any]) -> m.CommandResponse:
        """POST a command as the eMSP (its body checked against the spec model first)."""
        COMMAND_MODELS[name].model_validate(body)
        return ok(await self.api.post(f"{V}/commands/{name}", headers=self.auth, json=body),
                  m.CommandResponse)

    async def tap(self, uid: str) -> str:
        """Present a card at the simulated reader; returns what the firmware decided
        (``tag.authorized``, ``tag.rejected``, ``tag.no_connector``, ``tag.stopped_session``,
        ``tag.cancelled`` ...)."""
        seen = len(self.events)
        await ctl(self.sock, "sim.tap", uid=uid)
        outcomes = ("tag.authorized", "tag.refused", "tag.rejected", "tag.no_connector",
                    "tag.stopped_session", "tag.cancelled")

        def decided() -> str | None:
            for event, _ in self.events[seen:]:
                if event in outcomes:
                    return event
            return None

        return str(await wait_until(decided, what=f"the firmware's decision on {uid}"))

    async def connector(self, predicate: Callable[[dict[str, Any]], Any],
                        what: str, timeout: float = 10.0) -> dict[str, Any]:
        status = await wait_status(self.sock, lambda s: predicate(s["connectors"][0]),
                                   timeout=timeout, what=what)
        return dict(status["connectors"][0])

    async def evse_status(self, expected: str, timeout: float = 10.0) -> m.EVSE:
        """Wait until the OCPI EVSE (read over the API) shows ``expected``."""
        deadline = time.monotonic() + timeout
        while True:
            evse = await self.evse()
            if evse.status == expected:
                return evse
            if time.monotonic() > deadline:
                raise AssertionError(f"EVSE status {evse.status}, expected {expected}")
            await asyncio.sleep(0.05)

    def pushed(self, module: str, method: str | None = None) -> list[Received]:
        return self.emsp.pushes(module, method)

    async def wait_pushed(self, predicate: Callable[[Received], Any],
                          timeout: float = 10.0) -> list[Received]:
        return await self.emsp.wait_for(predicate, timeout)


@contextlib.asynccontextmanager
async def running_chain(db: str, tmp_path: Path, *, energy_per_kwh: float,
                        time_per_hour: float, flat: float, vat: float,
                        station_keys: dict[str, str] | None = None,
                        **csms_settings: Any) -> AsyncIterator[Chain]:
    """Backend with tariff T1 and charger CP1 (HTTP Basic password) at LOC1, the eMSP
    registered over the credentials handshake, and the firmware connected and Available.
    ``csms_settings`` are the backend's settings beyond the tests' defaults (``admin_port``...)."""
    short_dir = Path(tempfile.mkdtemp(prefix="cfw-chain-"))  # Unix socket path length
    try:
        async with running_emsp() as emsp, csms_running(db, **csms_settings) as csms:
            await csms.db(csms.store.add_tariff, make_tariff(
                TARIFF, energy=energy_per_kwh, time_h=time_per_hour, flat=flat, vat=vat))
            await csms.db(add_test_charger, csms.store, CHARGER, CHARGER_PASSWORD, TARIFF,
                          LOCATION)
            token_c = await register_emsp(csms, emsp)
            _, config = sim_station_config(tmp_path, csms.ocpp_url, station_id=CHARGER,
                                           password=CHARGER_PASSWORD, keys=station_keys)
            sock = short_dir / "control.sock"
            async with httpx.AsyncClient(base_url=csms.api_url) as api, \
                    running_station(config, sock) as runtime:
                chain = Chain(csms, emsp, token_c, api, runtime, sock)
                runtime.event_listeners.append(
                    lambda event, fields: chain.events.append((event, dict(fields))))
                await wait_status(sock, lambda s: s["backend"]["online"]
                                  and s["connectors"][0]["status"] == "Available",
                                  what="the firmware online and Available")
                await chain.evse_status("AVAILABLE")
                yield chain
    finally:
        shutil.rmtree(short_dir, ignore_errors=True)
