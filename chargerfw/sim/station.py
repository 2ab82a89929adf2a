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
from pathlib import Path
from typing import Any

import msgspec

from chargerfw.config import StationConfig
from chargerfw.control.api import (
    ConnectorStatus,
    SimChargeRequest,
    SimPlugRequest,
    SimTapRequest,
    SimUnplugRequest,
    StatusRequest,
)
from chargerfw.logs import get_logger
from chargerfw.runtime.station import StationRuntime
from chargerfw.station.enums import ChargePointStatus
from chargerfw.store import OUTBOX_DELIVERED

log = get_logger(__name__)

DEMO_TAG = "04A1B2C3D4E5F6"
Echo = Callable[[str], None]


@dataclass(frozen=True)
class BundledBackend:
    ocpp_url: str
    api_url: str
    db: str


SIM_TARIFF_ID = "SIM-T1"


@contextlib.asynccontextmanager
async def bundled_backend(db_path: Path, ocpp_port: int, api_port: int,
                          station: StationConfig | None = None,
                          demo_tag: str | None = None) -> AsyncIterator[BundledBackend]:
    """The project's own backend in this process. ``station`` is registered (with its password,
    a bench location, one EVSE per connector and a tariff) so its sessions show in OCPI and
    are billed; other charge points register themselves on first connect. ``demo_tag`` is
    whitelisted ALWAYS so the demo card is accepted."""
    from chargerfw.csms import server as csms_server
    from chargerfw.csms.urlpolicy import LOOPBACK_NETWORKS

    # A bench: roaming partners under test run on this machine.
    settings = csms_server.CsmsSettings(db=str(db_path), host="127.0.0.1", ocpp_port=ocpp_port,
                                        api_port=api_port, auto_register=True,
                                        outbound_allowed_networks=LOOPBACK_NETWORKS)
    async with csms_server.running_csms(settings) as csms:
        if station is not None:
            await asyncio.to_thread(register_sim_station, csms.store, station)
        if demo_tag is not None:
            await asyncio.to_thread(csms.store.add_local_token, demo_tag,
                                    issuer="chargerfw demo")
        yield BundledBackend(csms.ocpp_url, csms.api_url, str(db_path))


def register_sim_station(store: Any, station: StationConfig) -> bool:
    """Register a simulated station at a bench location with a demo tariff, unless the
    backend knows it already; True when it was registered now."""
    from chargerfw.csms.ocpi import models as m
    from chargerfw.csms.store import AlreadyExists, ConnectorSpec, EvseSpec, LocationSpec, utcnow

    if store.get_charge_point(station.station.id) is not None:
        return False
    with contextlib.suppress(AlreadyExists):  # kept from an earlier run
        store.add_tariff(m.Tariff.model_validate({
            "country_code": store.cpo.country_code, "party_id": store.cpo.party_id,
            "id": SIM_TARIFF_ID, "currency": store.cpo.currency,
            "elements": [{"price_components": [
                {"type": "ENERGY", "price": 0.30, "vat": 21, "step_size": 1},
                {"type": "FLAT", "price": 0.50, "vat": 21, "step_size": 1}]}],
            "last_updated": utcnow()}))
    location = LocationSpec(id="SIM-BENCH", name="chargerfw test bench",
                            address="Stationsplein 1", city="Utrecht", country="NLD",
                            latitude="52.08917", longitude="5.11028",
                            time_zone="Europe/Amsterdam")
    evses = [EvseSpec(uid=f"{station.station.id}-{c.id}", ocpp_connector_id=c.id,
                      connectors=[ConnectorSpec(
                          "1", "IEC_62196_T2", "SOCKET",
                          "AC_3_PHASE" if c.phases == 3 else "AC_1_PHASE",
                          400 if c.phases == 3 else 230, int(c.max_current_a))])
             for c in station.connector]
    password = station.ocpp.password if station.ocpp else None
    store.add_charge_point(station.station.id, password, location, evses, SIM_TARIFF_ID)
    return True


def with_backend_url(config: StationConfig, url: str) -> StationConfig:
    """The config pointed at another CSMS (its security profile and password kept)."""
    assert config.ocpp is not None
    if url.startswith("ws://") and config.ocpp.security_profile == 2:
        raise ValueError("security profile 2 needs a wss:// CSMS URL")
    ocpp = msgspec.structs.replace(config.ocpp, url=url.rstrip("/"))
    return msgspec.structs.replace(config, ocpp=ocpp)


async def run_demo(runtime: StationRuntime, echo: Echo, tag: str = DEMO_TAG,
                   charge_s: float = 20.0, connector: int = 1) -> None:
    """Plug in, tap a card, charge ``charge_s`` with meter values flowing, tap again, unplug:
    the same typed requests the control socket takes, answered in this process."""
    handlers = runtime.handlers

    def connector_status() -> ConnectorStatus:
        return handlers.connector_status(connector)

    def meter_values_delivered() -> int:
        assert runtime.store is not None
        return sum(1 for m in runtime.store.outbox_all()
                   if m.action == "MeterValues" and m.state == OUTBOX_DELIVERED)

    async def wait(what: str, predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                echo(f"demo: gave up waiting for {what}")
                return False
            await asyncio.sleep(0.1)
        return True

    await runtime.ready.wait()
    echo("demo: waiting for the backend to accept the station ...")
    await wait("the backend", lambda: handlers.status(StatusRequest()).backend.online,
               timeout=30)
    echo("demo: plugging the vehicle in")
    await handlers.call(SimPlugRequest(connector))
    await asyncio.sleep(1.0)
    echo(f"demo: tapping card {tag}")
    await handlers.call(SimTapRequest(tag))
    if not await wait("the transaction to start",
                      lambda: connector_status().transaction is not None):
        return
    echo("demo: the vehicle asks for energy")
    await handlers.call(SimChargeRequest(connector))
    await wait("charging", lambda: connector_status().status is ChargePointStatus.CHARGING)
    deadline = time.monotonic() + charge_s
    while time.monotonic() < deadline:
        await asyncio.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        c = connector_status()
        tx = c.transaction
        power = (c.meter.power_w if c.meter else None) or 0
        echo(f"demo: {c.status.value:<9} power {power:8.0f} W  "
             f"energy {tx.energy_wh if tx else 0:8.1f} Wh  "
             f"transaction {tx.transaction_id if tx else '-'}  "
             f"MeterValues delivered {meter_values_delivered()}  "
             f"outbox {handlers.status(StatusRequest()).outbox.pending}")
    echo(f"demo: tapping card {tag} again to stop")
    await handlers.call(SimTapRequest(tag))
    await wait("the transaction to stop", lambda: connector_status().transaction is None)
    await asyncio.sleep(1.0)
    echo("demo: unplugging")
    await handlers.call(SimUnplugRequest(connector))
    await wait("Available", lambda: connector_status().status is ChargePointStatus.AVAILABLE,
               timeout=10)
    echo("demo: done; the station keeps running (Ctrl-C to stop)")


def station_event_printer(echo: Echo) -> Callable[[str, dict[str, Any]], None]:
    """Print the runtime's station events (taps, transactions, faults) for a person watching."""

    def show(event: str, fields: dict[str, Any]) -> None:
        details = " ".join(f"{k}={v}" for k, v in fields.items())
        echo(f"station: {event} {details}".rstrip())

    return show
