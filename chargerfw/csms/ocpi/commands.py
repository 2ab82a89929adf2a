"""OCPI commands (Receiver) mapped onto OCPP 1.6 requests.

``handle`` answers at once with a CommandResponse; the charger's answer (or its absence within
the timeout) becomes a CommandResult queued as a POST to the request's ``response_url``.

A partner commands only for its own: START_SESSION and RESERVE_NOW with a token of one of its
parties, STOP_SESSION of a session of such a token (another's is UNKNOWN_SESSION to it),
UNLOCK_CONNECTOR where its session is or just was, CANCEL_RESERVATION of its reservations. A
reservation expires at most ``max_reservation`` ahead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import assert_never

from sqlalchemy.engine import RowMapping

from chargerfw.csms.background import BackgroundTasks
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpp_server import ChargerCallError, ChargerNotConnected, OcppServer
from chargerfw.csms.store import AsyncStore, utcnow
from chargerfw.logs import get_logger

log = get_logger(__name__)

CommandRequest = (m.StartSession | m.StopSession | m.ReserveNow | m.CancelReservation
                  | m.UnlockConnector)

COMMAND_MODELS: dict[str, type[CommandRequest]] = {
    "START_SESSION": m.StartSession,
    "STOP_SESSION": m.StopSession,
    "RESERVE_NOW": m.ReserveNow,
    "CANCEL_RESERVATION": m.CancelReservation,
    "UNLOCK_CONNECTOR": m.UnlockConnector,
}

# The furthest ahead a RESERVE_NOW may expire unless configured otherwise: a public charger
# held longer than that is lost to everyone else.
DEFAULT_MAX_RESERVATION = timedelta(hours=2)

Response = m.CommandResponseType
Result = m.CommandResultType

# The charger's OCPP answer -> the CommandResult the eMSP gets.
_REMOTE_START_STOP = {"Accepted": Result.ACCEPTED, "Rejected": Result.REJECTED}
_RESERVE = {"Accepted": Result.ACCEPTED, "Occupied": Result.EVSE_OCCUPIED,
            "Faulted": Result.EVSE_INOPERATIVE, "Unavailable": Result.EVSE_INOPERATIVE,
            "Rejected": Result.REJECTED}
_CANCEL = {"Accepted": Result.ACCEPTED, "Rejected": Result.REJECTED}
_UNLOCK = {"Unlocked": Result.ACCEPTED, "UnlockFailed": Result.FAILED,
           "NotSupported": Result.NOT_SUPPORTED}


def _response(result: m.CommandResponseType, timeout: int,
              text: str | None = None) -> m.CommandResponse:
    message = [m.DisplayText(language="en", text=text)] if text else None
    return m.CommandResponse(result=result, timeout=timeout, message=message)


class CommandHandler:
    """Executes OCPI commands from a registered eMSP against connected chargers."""

    def __init__(self, db: AsyncStore, ocpp: OcppServer, on_result: Callable[[], None],
                 timeout_s: float = 30.0,
                 max_reservation: timedelta = DEFAULT_MAX_RESERVATION) -> None:
        self._db = db
        self._ocpp = ocpp
        self._on_result = on_result
        self.timeout_s = timeout_s
        self.max_reservation = max_reservation
        self._tasks = BackgroundTasks()

    async def close(self) -> None:
        await self._tasks.close()

    async def handle(self, request: CommandRequest, partner: RowMapping) -> m.CommandResponse:
        """Answer a command at once; its result follows as a push to its response_url."""
        match request:
            case m.StartSession():
                return await self._start_session(request, partner)
            case m.StopSession():
                return await self._stop_session(request, partner)
            case m.ReserveNow():
                return await self._reserve_now(request, partner)
            case m.CancelReservation():
                return await self._cancel_reservation(request, partner)
            case m.UnlockConnector():
                return await self._unlock_connector(request, partner)
            case _:
                assert_never(request)

    @property
    def _timeout(self) -> int:
        return max(int(self.timeout_s), 1)

    async def _evse(self, location_id: str, evse_uid: str | None) -> RowMapping | None:
        store = self._db.store
        if evse_uid is not None:
            return await self._db(store.evse, location_id, evse_uid)
        candidates = await self._db(store.evses_of_location, location_id)
        for evse in candidates:
            if evse["status"] == "AVAILABLE" \
                    and await self._ocpp.is_connected(evse["charge_point_id"]):
                return evse
        return None

    async def _not_theirs(self, partner: RowMapping, token: m.Token
                          ) -> m.CommandResponse | None:
        """A REJECTED answer unless the token was issued by one of the caller's parties."""
        if await self._db(self._db.store.holds_party, partner["id"], token.country_code,
                          token.party_id):
            return None
        return _response(Response.REJECTED, self._timeout,
                         f"token of {token.country_code}/{token.party_id} is not one of yours")

    async def _offline(self, charge_point_id: str) -> m.CommandResponse | None:
        if not await self._ocpp.is_connected(charge_point_id):
            return _response(Response.REJECTED, self._timeout, "charge point is offline")
        return None

    def _dispatch(self, partner: RowMapping, command: str, request: CommandRequest,
                  charge_point_id: str | None, id_tag: str | None,
                  run: Callable[[], Awaitable[m.CommandResultType]]) -> None:
        """Record the command, then run it in the background and queue its CommandResult."""
        async def execute() -> None:
            body = request.model_dump(mode="json", exclude_none=True)
            command_id = await self._db(self._db.store.create_command, partner["id"], command,
                                        body, request.response_url, charge_point_id, id_tag,
                                        self.timeout_s)
            try:
                result = await asyncio.wait_for(run(), self.timeout_s)
            except TimeoutError:
                result = Result.TIMEOUT
            except (ChargerNotConnected, ChargerCallError) as exc:
                log.warning("ocpi.command.failed", command=command, error=str(exc))
                result = Result.FAILED
            await self._db(self._db.store.finish_command, command_id, result.value)
            await self._db(self._db.store.enqueue_push, partner["id"], "commands", "POST",
                           request.response_url, m.CommandResult(result=result).model_dump(
                               mode="json", exclude_none=True))
            log.info("ocpi.command.result", command=command, result=result.value)
            self._on_result()

        self._tasks.spawn(execute(), f"ocpi-command-{command}", "ocpi.command.crashed",
                          command=command)

    async def _start_session(self, request: m.StartSession,
                             partner: RowMapping) -> m.CommandResponse:
        if (refused := await self._not_theirs(partner, request.token)) is not None:
            return refused
        evse = await self._evse(request.location_id, request.evse_uid)
        if evse is None:
            return _response(Response.REJECTED, self._timeout, "no such EVSE, or none available")
        if (offline := await self._offline(evse["charge_point_id"])) is not None:
            return offline
        cp_id, connector = evse["charge_point_id"], evse["ocpp_connector_id"]
        id_tag = request.token.uid[:20]  # OCPP 1.6 idTag is CiString20

        async def run() -> m.CommandResultType:
            status = await self._ocpp.remote_start_transaction(cp_id, id_tag, connector)
            return _REMOTE_START_STOP.get(status, Result.FAILED)

        self._dispatch(partner, "START_SESSION", request, cp_id, id_tag, run)
        return _response(Response.ACCEPTED, self._timeout)

    async def _stop_session(self, request: m.StopSession,
                            partner: RowMapping) -> m.CommandResponse:
        tx = await self._db(self._db.store.transaction_by_session_id, request.session_id)
        # Another party's session is not for the caller to know of: it is unknown to it.
        if tx is None or not await self._db(self._db.store.holds_party, partner["id"],
                                            tx["token_country_code"], tx["token_party_id"]):
            return _response(Response.UNKNOWN_SESSION, self._timeout, "unknown session")
        if tx["stop_time"] is not None:
            return _response(Response.REJECTED, self._timeout, "session has ended")
        if (offline := await self._offline(tx["charge_point_id"])) is not None:
            return offline

        async def run() -> m.CommandResultType:
            status = await self._ocpp.remote_stop_transaction(tx["charge_point_id"], tx["id"])
            return _REMOTE_START_STOP.get(status, Result.FAILED)

        self._dispatch(partner, "STOP_SESSION", request, tx["charge_point_id"], None, run)
        return _response(Response.ACCEPTED, self._timeout)

    async def _reserve_now(self, request: m.ReserveNow,
                           partner: RowMapping) -> m.CommandResponse:
        if (refused := await self._not_theirs(partner, request.token)) is not None:
            return refused
        now = utcnow()
        if request.expiry_date <= now:
            return _response(Response.REJECTED, self._timeout, "expiry_date has passed")
        if request.expiry_date > now + self.max_reservation:
            limit = int(self.max_reservation.total_seconds() // 60)
            return _response(Response.REJECTED, self._timeout,
                             f"expiry_date is more than {limit} minutes ahead")
        evse = await self._evse(request.location_id, request.evse_uid)
        if evse is None:
            return _response(Response.REJECTED, self._timeout, "no such EVSE, or none available")
        if (offline := await self._offline(evse["charge_point_id"])) is not None:
            return offline
        store = self._db.store
        cp_id, connector = evse["charge_point_id"], evse["ocpp_connector_id"]
        id_tag = request.token.uid[:20]
        existing = await self._db(store.reservation_by_ocpi_id, partner["id"],
                                  request.reservation_id)
        if existing is not None and existing["status"] in ("ACCEPTED", "PENDING"):
            # The same reservation_id again is an update: OCPP ReserveNow replaces it.
            reservation_id = existing["id"]
        else:
            reservation_id = await self._db(store.create_reservation, cp_id, connector, id_tag,
                                            request.expiry_date, partner["id"],
                                            request.reservation_id)

        async def run() -> m.CommandResultType:
            status = await self._ocpp.reserve_now(cp_id, connector, request.expiry_date, id_tag,
                                                  reservation_id)
            result = _RESERVE.get(status, Result.FAILED)
            await self._db(store.set_reservation_status, reservation_id,
                           "ACCEPTED" if result == Result.ACCEPTED else "REJECTED")
            return result

        self._dispatch(partner, "RESERVE_NOW", request, cp_id, id_tag, run)
        return _response(Response.ACCEPTED, self._timeout)

    async def _cancel_reservation(self, request: m.CancelReservation,
                                  partner: RowMapping) -> m.CommandResponse:
        store = self._db.store
        reservation = await self._db(store.reservation_by_ocpi_id, partner["id"],
                                     request.reservation_id)
        if reservation is None or reservation["status"] != "ACCEPTED":
            async def unknown() -> m.CommandResultType:
                return Result.UNKNOWN_RESERVATION

            self._dispatch(partner, "CANCEL_RESERVATION", request, None, None, unknown)
            return _response(Response.ACCEPTED, self._timeout)
        cp_id = reservation["charge_point_id"]
        if (offline := await self._offline(cp_id)) is not None:
            return offline

        async def run() -> m.CommandResultType:
            status = await self._ocpp.cancel_reservation(cp_id, reservation["id"])
            result = _CANCEL.get(status, Result.FAILED)
            if result == Result.ACCEPTED:
                await self._db(store.set_reservation_status, reservation["id"], "CANCELLED")
            return result

        self._dispatch(partner, "CANCEL_RESERVATION", request, cp_id, None, run)
        return _response(Response.ACCEPTED, self._timeout)

    async def _unlock_connector(self, request: m.UnlockConnector,
                                partner: RowMapping) -> m.CommandResponse:
        evse = await self._evse(request.location_id, request.evse_uid)
        if evse is None:
            return _response(Response.REJECTED, self._timeout, "unknown EVSE")
        cp_id, connector = evse["charge_point_id"], evse["ocpp_connector_id"]
        if not await self._db(self._db.store.may_unlock, partner["id"], cp_id, connector):
            return _response(Response.REJECTED, self._timeout,
                             "no session of yours on this connector")
        if (offline := await self._offline(cp_id)) is not None:
            return offline

        async def run() -> m.CommandResultType:
            status = await self._ocpp.unlock_connector(cp_id, connector)
            return _UNLOCK.get(status, Result.FAILED)

        self._dispatch(partner, "UNLOCK_CONNECTOR", request, cp_id, None, run)
        return _response(Response.ACCEPTED, self._timeout)

