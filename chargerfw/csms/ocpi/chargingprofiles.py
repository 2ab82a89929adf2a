"""OCPI chargingprofiles (Receiver, CPO role) mapped onto OCPP 1.6 smart charging.

An eMSP's request on one of its sessions is answered at once with a ChargingProfileResponse;
the charger is then asked (SetChargingProfile, GetCompositeSchedule, ClearChargingProfile)
and the ChargingProfileResult, ActiveChargingProfileResult or ClearProfileResult is queued as
a POST to the request's ``response_url``.

Only the party of the session's token may ask (another's session is UNKNOWN_SESSION to it). On
a site with load management the site's share always wins: the eMSP's profile is stored and
the site's balancer sends the connector a TxProfile of the lower of the two in every period;
clearing it leaves the share alone. Elsewhere the eMSP's profile is sent as it is (every
period at most what the connector carries).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import RowMapping

from chargerfw.csms.background import BackgroundTasks
from chargerfw.csms.load_management import ConnectorKey
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpp_server import ChargerCallError, ChargerNotConnected, OcppServer
from chargerfw.csms.site_balancer import (
    SiteBalancer,
    charging_profile,
    combined_schedule,
    profile_id,
)
from chargerfw.csms.store import AsyncStore, utcnow
from chargerfw.csms.store.sites import DEFAULT_STACK_LEVEL
from chargerfw.logs import get_logger

log = get_logger(__name__)

Response = m.ChargingProfileResponseType
Result = m.ChargingProfileResultType
SMART_CHARGING = "SmartCharging"
MODULE = "chargingprofiles"
# The shortest time between two changes of one session's profile.
DEFAULT_MIN_INTERVAL_S = 10.0


class ChargingProfileHandler:
    """Carries out eMSPs' charging-profile requests on their sessions."""

    def __init__(self, db: AsyncStore, ocpp: OcppServer, balancer: SiteBalancer,
                 on_result: Callable[[], None], timeout_s: float = 30.0,
                 min_interval_s: float = DEFAULT_MIN_INTERVAL_S) -> None:
        self._db = db
        self._ocpp = ocpp
        self._balancer = balancer
        self._on_result = on_result
        self.timeout_s = timeout_s
        self.min_interval_s = min_interval_s
        self._last_change: dict[str, float] = {}
        self._tasks = BackgroundTasks()

    async def close(self) -> None:
        await self._tasks.close()

    def _response(self, result: Response) -> m.ChargingProfileResponse:
        return m.ChargingProfileResponse(result=result, timeout=max(int(self.timeout_s), 1))

    async def _session(self, partner: RowMapping, session_id: str, changes: bool
                       ) -> tuple[RowMapping | None, m.ChargingProfileResponse | None]:
        """The caller's running session on a connected charger that can take profiles, or
        the answer why not."""
        store = self._db.store
        tx = await self._db(store.transaction_by_session_id, session_id)
        if tx is None or not await self._db(store.holds_party, partner["id"],
                                            tx["token_country_code"], tx["token_party_id"]):
            return None, self._response(Response.UNKNOWN_SESSION)
        if tx["stop_time"] is not None \
                or not await self._ocpp.is_connected(tx["charge_point_id"]):
            return None, self._response(Response.REJECTED)
        charger = await self._db(store.get_charge_point, tx["charge_point_id"])
        profiles = charger["feature_profiles"] if charger is not None else None
        if profiles is not None and SMART_CHARGING not in profiles.split(","):
            return None, self._response(Response.NOT_SUPPORTED)
        if changes:
            now = time.monotonic()
            last = self._last_change.get(session_id)
            if last is not None and now - last < self.min_interval_s:
                return None, self._response(Response.TOO_OFTEN)
            self._last_change[session_id] = now
        return tx, None

    def _dispatch(self, partner: RowMapping, what: str, response_url: str,
                  run: Callable[[], Awaitable[BaseModel]]) -> None:
        async def execute() -> None:
            try:
                result = await asyncio.wait_for(run(), self.timeout_s)
            except (TimeoutError, ChargerNotConnected, ChargerCallError, ValueError) as exc:
                # ValueError: the charger's answer was no valid schedule.
                log.warning("ocpi.chargingprofile.failed", request=what, error=str(exc))
                result = (m.ActiveChargingProfileResult(result=Result.REJECTED)
                          if what == "GET" else m.ChargingProfileResult(result=Result.REJECTED))
            await self._db(self._db.store.enqueue_push, partner["id"], MODULE, "POST",
                           response_url, result.model_dump(mode="json", exclude_none=True))
            log.info("ocpi.chargingprofile.result", request=what,
                     result=getattr(result, "result", None))
            self._on_result()

        self._tasks.spawn(execute(), f"ocpi-chargingprofile-{what}",
                          "ocpi.chargingprofile.crashed", request=what)

    async def _apply(self, tx: RowMapping) -> str:
        """Send the connector its TxProfile as it now stands; the charger's answer."""
        store = self._db.store
        cp_id, connector = tx["charge_point_id"], tx["connector_id"]
        site_id = await self._db(store.top_site_of, cp_id)
        if site_id is not None:
            key = ConnectorKey(cp_id, connector)
            answers = await self._balancer.rebalance(site_id)
            if key in answers:
                return answers[key]
            # Nothing to send: what it has is already right, unless it refuses changes.
            return "Rejected" if self._balancer.is_pinned(key) else "Accepted"
        stored = await self._db(store.session_profile, tx["id"])
        if stored is None:
            return await self._ocpp.clear_charging_profile(cp_id, profile_id(connector),
                                                           connector, "TxProfile")
        rated = await self._db(store.connector_rating, cp_id, connector)
        kind, schedule, start = combined_schedule(rated, stored["profile"], utcnow())
        return await self._ocpp.set_charging_profile(cp_id, connector, charging_profile(
            connector, DEFAULT_STACK_LEVEL, tx["id"], kind, schedule, start))

    async def set_profile(self, partner: RowMapping, session_id: str,
                          request: m.SetChargingProfile) -> m.ChargingProfileResponse:
        tx, refused = await self._session(partner, session_id, changes=True)
        if tx is None:
            assert refused is not None
            return refused
        store = self._db.store
        profile = request.charging_profile.model_dump(mode="json", exclude_none=True)

        async def run() -> BaseModel:
            previous = await self._db(store.session_profile, tx["id"])
            await self._db(store.set_session_profile, tx["id"], partner["id"], profile)
            answer = await self._apply(tx)
            if answer != "Accepted":  # the charger keeps what it had
                if previous is None:
                    await self._db(store.clear_session_profile, tx["id"])
                else:
                    await self._db(store.set_session_profile, tx["id"],
                                   previous["partner_id"], previous["profile"])
            return m.ChargingProfileResult(
                result=Result.ACCEPTED if answer == "Accepted" else Result.REJECTED)

        self._dispatch(partner, "PUT", request.response_url, run)
        return self._response(Response.ACCEPTED)

    async def clear_profile(self, partner: RowMapping, session_id: str,
                            response_url: str) -> m.ChargingProfileResponse:
        tx, refused = await self._session(partner, session_id, changes=True)
        if tx is None:
            assert refused is not None
            return refused
        store = self._db.store

        async def run() -> BaseModel:
            previous = await self._db(store.session_profile, tx["id"])
            if previous is None:
                return m.ClearProfileResult(result=Result.UNKNOWN)
            await self._db(store.clear_session_profile, tx["id"])
            answer = await self._apply(tx)
            if answer != "Accepted":
                await self._db(store.set_session_profile, tx["id"], previous["partner_id"],
                               previous["profile"])
            return m.ClearProfileResult(
                result=Result.ACCEPTED if answer == "Accepted" else Result.REJECTED)

        self._dispatch(partner, "DELETE", response_url, run)
        return self._response(Response.ACCEPTED)

    async def active_profile(self, partner: RowMapping, session_id: str, duration: int,
                             response_url: str) -> m.ChargingProfileResponse:
        tx, refused = await self._session(partner, session_id, changes=False)
        if tx is None:
            assert refused is not None
            return refused

        async def run() -> BaseModel:
            answer = await self._ocpp.get_composite_schedule(
                tx["charge_point_id"], tx["connector_id"], duration, "A")
            schedule = answer.charging_schedule
            if str(answer.status) != "Accepted" or not schedule:
                return m.ActiveChargingProfileResult(result=Result.REJECTED)
            return m.ActiveChargingProfileResult(
                result=Result.ACCEPTED, profile=_active_profile(answer.schedule_start,
                                                                schedule))

        self._dispatch(partner, "GET", response_url, run)
        return self._response(Response.ACCEPTED)


def _active_profile(schedule_start: str | None, schedule: dict[str, Any]
                    ) -> m.ActiveChargingProfile:
    """An OCPP composite schedule (snake_case keys) as an OCPI ActiveChargingProfile."""
    profile = {
        "charging_rate_unit": schedule["charging_rate_unit"],
        "duration": schedule.get("duration"),
        "min_charging_rate": schedule.get("min_charging_rate"),
        "charging_profile_period": [
            {"start_period": p["start_period"], "limit": p["limit"]}
            for p in schedule["charging_schedule_period"]]}
    return m.ActiveChargingProfile.model_validate({
        "start_date_time": schedule_start or schedule.get("start_schedule") or utcnow(),
        "charging_profile": {k: v for k, v in profile.items() if v is not None}})
