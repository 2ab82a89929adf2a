"""``chargerfw sim station``: the whole station on simulated hardware, against a given CSMS or
the bundled backend (``chargerfw.csms``, started in this process on loopback), with an optional
scripted demo session that prints what happens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chargerfw.config import StationConfig
from chargerfw.logs import get_logger
from chargerfw.runtime.station import StationRuntime

log = get_logger(__name__)

DEMO_TAG = "04A1B2C3D4E5F6"
Echo = Callable[[str], None]


@dataclass(frozen=True)
class BundledBackend:
    ocpp_url: str
    api_url: str
    db: str


@contextlib.asynccontextmanager
async def bundled_backend(db_path: Path, ocpp_port: int, api_port: int,
                          demo_tag: str | None) -> AsyncIterator[BundledBackend]:
    """The project's own backend in this process: charge points register themselves on first
    connect (with the password they present); ``demo_tag`` is whitelisted ALWAYS so the demo
    card is accepted."""
    from chargerfw.csms import server as csms_server

    settings = csms_server.CsmsSettings(db=str(db_path), host="127.0.0.1", ocpp_port=ocpp_port,
                                        api_port=api_port, auto_register=True)
    async with csms_server.running_csms(settings) as csms:
        if demo_tag is not None:
            await asyncio.to_thread(_whitelist_demo_tag, csms.store, demo_tag)
        yield BundledBackend(csms.ocpp_url, csms.api_url, str(db_path))


def _whitelist_demo_tag(store: Any, id_tag: str) -> None:
    from chargerfw.csms.ocpi import models as m

    token = m.Token.model_validate({
        "country_code": "NL", "party_id": "CFW", "uid": id_tag, "type": "RFID",
        "contract_id": f"NL-CFW-{id_tag}"[:36], "issuer": "chargerfw demo", "valid": True,
        "whitelist": "ALWAYS", "last_updated": datetime.now(UTC),
    })
    store.put_token(token, None)


def with_backend_url(config: StationConfig, url: str) -> StationConfig:
    """The config pointed at another CSMS (its security profile and password kept)."""
    assert config.ocpp is not None
    ocpp = config.ocpp.model_copy(update={"url": url.rstrip("/")})
    if url.startswith("ws://") and ocpp.security_profile == 2:
        raise ValueError("security profile 2 needs a wss:// CSMS URL")
    return config.model_copy(update={"ocpp": ocpp})


async def run_demo(runtime: StationRuntime, echo: Echo, tag: str = DEMO_TAG,
                   charge_s: float = 20.0, connector: int = 1) -> None:
    """Plug in, tap a card, charge ``charge_s`` with meter values flowing, tap again, unplug."""
    handlers = runtime.control_handlers()

    async def do(method: str, **params: Any) -> Any:
        result = handlers[method](**params)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    def connector_status() -> dict[str, Any]:
        return runtime.status()["connectors"][connector - 1]

    async def wait(what: str, predicate: Callable[[], Any], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                echo(f"demo: gave up waiting for {what}")
                return False
            await asyncio.sleep(0.1)
        return True

    await runtime.ready.wait()
    echo("demo: waiting for the backend to accept the station ...")
    await wait("the backend", lambda: runtime.status()["backend"]["online"], timeout=30)
    echo("demo: plugging the vehicle in")
    await do("sim.plug", connector=connector)
    await asyncio.sleep(1.0)
    echo(f"demo: tapping card {tag}")
    await do("sim.tap", uid=tag)
    if not await wait("the transaction to start",
                      lambda: connector_status()["transaction"] is not None):
        return
    echo("demo: the vehicle asks for energy")
    await do("sim.charge", connector=connector)
    await wait("charging", lambda: connector_status()["status"] == "Charging")
    deadline = time.monotonic() + charge_s
    while time.monotonic() < deadline:
        await asyncio.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        c = connector_status()
        tx, meter = c["transaction"], c["meter"] or {}
        echo(f"demo: {c['status']:<9} power {meter.get('power_w') or 0:8.0f} W  "
             f"energy {tx['energy_wh'] if tx else 0:8.1f} Wh  "
             f"transaction {tx['transaction_id'] if tx else '-'}  "
             f"outbox {runtime.status()['outbox']['pending']}")
    echo(f"demo: tapping card {tag} again to stop")
    await do("sim.tap", uid=tag)
    await wait("the transaction to stop", lambda: connector_status()["transaction"] is None)
    await asyncio.sleep(1.0)
    echo("demo: unplugging")
    await do("sim.unplug", connector=connector)
    await wait("Available", lambda: connector_status()["status"] == "Available", timeout=10)
    echo("demo: done; the station keeps running (Ctrl-C to stop)")


def station_event_printer(echo: Echo) -> Callable[[str, dict[str, Any]], None]:
    """Print the runtime's station events (taps, transactions, faults) for a person watching."""

    def show(event: str, fields: dict[str, Any]) -> None:
        details = " ".join(f"{k}={v}" for k, v in fields.items())
        echo(f"station: {event} {details}".rstrip())

    return show
