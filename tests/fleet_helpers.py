"""Helpers for the fleet tests: the bundled backend on loopback with the fleet's cards
whitelisted, and a watcher that records every connector status the backend stored."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from chargerfw.csms import server as csms_server
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.tables import connector_status
from chargerfw.sim.scenario import charger_uid


def whitelist(store: Any, uid: str) -> None:
    token = m.Token.model_validate({
        "country_code": "NL", "party_id": "CFW", "uid": uid, "type": "RFID",
        "contract_id": f"NL-CFW-{uid}"[:36], "issuer": "fleet test", "valid": True,
        "whitelist": "ALWAYS", "last_updated": datetime.now(UTC)})
    store.put_token(token, None)


@contextlib.asynccontextmanager
async def bundled_csms(tmp_path: Path, cards: int) -> AsyncIterator[csms_server.RunningCsms]:
    """The project's backend in this loop on free loopback ports; charge points register on
    first connect; the first ``cards`` fleet cards are whitelisted (ALWAYS)."""
    settings = csms_server.CsmsSettings(db=str(tmp_path / "csms.sqlite3"), host="127.0.0.1",
                                        ocpp_port=0, api_port=0, auto_register=True)
    async with csms_server.running_csms(settings) as csms:
        for index in range(1, cards + 1):
            await asyncio.to_thread(whitelist, csms.store, charger_uid(index))
        yield csms


class StatusWatcher:
    """Polls the backend's stored connector statuses and keeps every distinct one seen per
    charge point (the backend keeps only the latest)."""

    def __init__(self, csms: csms_server.RunningCsms) -> None:
        self.csms = csms
        self.seen: dict[str, list[tuple[str, str, str | None]]] = {}
        self._task: asyncio.Task[None] | None = None

    def _rows(self) -> list[Any]:
        with self.csms.store.engine.connect() as c:
            return list(c.execute(sa.select(connector_status).where(
                connector_status.c.connector_id == 1)).mappings().all())

    async def _poll_once(self) -> None:
        for row in await asyncio.to_thread(self._rows):
            entry = (row["status"], row["error_code"], row["vendor_error_code"])
            history = self.seen.setdefault(row["charge_point_id"], [])
            if not history or history[-1] != entry:
                history.append(entry)

    async def _watch(self) -> None:
        while True:
            await self._poll_once()
            await asyncio.sleep(0.05)

    async def __aenter__(self) -> StatusWatcher:
        self._task = asyncio.create_task(self._watch())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        # What arrived after the last poll (the final statuses of a fleet that just stopped).
        await self._poll_once()
