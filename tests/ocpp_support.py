"""The firmware's OCPP client running against a test backend on loopback, with fast back-off."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.connection import Backoff, OcppConnection
from chargerfw.ocpp.station_port import BootInfo
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.store import Store


@contextlib.asynccontextmanager
async def running_client(tmp_path: Path, url: str, *, station: Any = None,
                         keys_overrides: dict[str, str] | None = None,
                         password: str | None = None, profile: int = 0,
                         ca_file: str | None = None,
                         call_timeout_s: float = 3.0) -> AsyncIterator[OcppClient]:
    store = Store(tmp_path / "state.db")
    keys = ConfigurationKeys(store, number_of_connectors=2, overrides=keys_overrides)
    connection = OcppConnection(url, "CP1", security_profile=profile, password=password,
                                ca_file=ca_file, ping_interval_s=lambda: keys.get_int("WebSocketPingInterval"),
                                backoff=Backoff(initial_s=0.05, maximum_s=0.2, floor_s=0.01),
                                stable_after_s=0.5)
    client = OcppClient(store=store, keys=keys, connection=connection,
                        boot=BootInfo(vendor="chargerfw", model="test", firmware_version="0.1"),
                        connector_phases={1: 3, 2: 1}, station=station,
                        call_timeout_s=call_timeout_s, tick_s=0.02, meter_persist_interval_s=0.0)
    task = asyncio.create_task(client.run())
    try:
        yield client
    finally:
        await client.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        store.close()
