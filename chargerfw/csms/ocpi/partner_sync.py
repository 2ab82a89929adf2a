"""Scheduled pulls from partners: every registered hub's party list (hubclientinfo) and every
eMSP's token changes (tokens Sender), once at start-up and then every configured interval
(with some splay, as the spec advises for pulls; 0 turns a schedule off). A partner that
just registered is pulled at once: a hub's party list first (its parties' tokens are
accepted by it), then the tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable

import httpx

from chargerfw.csms.ocpi.hubs import pull_hub_parties
from chargerfw.csms.ocpi.pull import PullError
from chargerfw.csms.ocpi.token_pull import pull_tokens
from chargerfw.csms.store import AsyncStore, StoreError, sender_url
from chargerfw.logs import get_logger

log = get_logger(__name__)


class PartnerSync:
    def __init__(self, db: AsyncStore, http: httpx.AsyncClient, *, token_interval_s: float,
                 hub_interval_s: float,
                 on_token_change: Callable[[str], None] | None = None) -> None:
        self._db = db
        self._http = http
        self.token_interval_s = token_interval_s
        self.hub_interval_s = hub_interval_s
        self._on_token_change = on_token_change
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self.hub_interval_s > 0:
            self._spawn(self._every(self.hub_interval_s, self.pull_all_hubs), "hub-pull")
        if self.token_interval_s > 0:
            self._spawn(self._every(self.token_interval_s, self.pull_all_tokens), "token-pull")

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def partner_registered(self, partner_id: int) -> None:
        self._spawn(self._pull_new_partner(partner_id), f"partner-pull-{partner_id}")

    async def _pull_new_partner(self, partner_id: int) -> None:
        partner = await self._db(self._db.store.get_partner, partner_id)
        if partner is None:
            return
        if partner["role"] == "HUB" and sender_url(partner["their_endpoints"], "hubclientinfo"):
            await self._pull_hub(partner_id)
        if sender_url(partner["their_endpoints"], "tokens"):
            await self._pull_tokens(partner_id)

    def _spawn(self, work: Awaitable[None], name: str) -> None:
        async def run() -> None:
            await work

        task = asyncio.create_task(run(), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _every(interval_s: float, action: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await action()
            except Exception:  # a database hiccup must not end the schedule
                log.exception("ocpi.partner_sync_failed")
            await asyncio.sleep(interval_s * random.uniform(0.9, 1.1))

    async def pull_all_hubs(self) -> None:
        for partner in await self._db(self._db.store.list_partners):
            if partner["registered"] and partner["role"] == "HUB" and sender_url(
                    partner["their_endpoints"], "hubclientinfo"):
                await self._pull_hub(partner["id"])

    async def pull_all_tokens(self) -> None:
        for partner in await self._db(self._db.store.list_partners):
            if partner["registered"] and sender_url(partner["their_endpoints"], "tokens"):
                await self._pull_tokens(partner["id"])

    async def _pull_tokens(self, partner_id: int) -> None:
        try:
            await pull_tokens(self._db, self._http, partner_id,
                              on_token_change=self._on_token_change)
        except (PullError, StoreError) as exc:
            log.warning("ocpi.token_pull_failed", partner=partner_id, error=str(exc))

    async def _pull_hub(self, hub_id: int) -> None:
        try:
            await pull_hub_parties(self._db, self._http, hub_id)
        except (PullError, StoreError) as exc:
            log.warning("ocpi.hub_pull_failed", hub=hub_id, error=str(exc))
