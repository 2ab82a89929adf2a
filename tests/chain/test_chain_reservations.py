"""The whole chain, reservations: RESERVE_NOW from the eMSP becomes OCPP ReserveNow at the real
firmware (simulated hardware), the connector shows Reserved there and RESERVED in OCPI (read
and pushed); another card cannot start while the reserved one can; a reservation left alone
expires back to AVAILABLE; CANCEL_RESERVATION frees it. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from chain_helpers import (
    EVSE_UID,
    LOCATION,
    Chain,
    ocpp_exchanges,
    running_chain,
    token_body,
)
from fakes import wait_until
from runtime_helpers import ctl

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)

RESERVED_CARD = "04BEEF0001"  # only the reservation vouches for it (no pushed token)
OTHER_CARD = "04A1B2C3D4"  # pushed by the eMSP, whitelist ALWAYS: valid, just not reserved


def chain_env(db: str, tmp_path: Path) -> Any:
    return running_chain(db, tmp_path, energy_per_kwh=0.30, time_per_hour=0.0, flat=0.0,
                         vat=0.0)


async def reserve(chain: Chain, reservation_id: str, uid: str, expires_in_s: float) -> str:
    """RESERVE_NOW as the eMSP; returns the response_url the CommandResult goes to."""
    url = f"{chain.emsp.base}/emsp/commands/RESERVE_NOW/{reservation_id}"
    response = await chain.command("RESERVE_NOW", {
        "response_url": url, "token": token_body(uid, "ALLOWED"),
        "expiry_date": (datetime.now(UTC) + timedelta(seconds=expires_in_s)).strftime(
            "%Y-%m-%dT%H:%M:%SZ"),
        "reservation_id": reservation_id, "location_id": LOCATION, "evse_uid": EVSE_UID})
    assert response.result == "ACCEPTED"
    return url


async def command_result(chain: Chain, response_url: str) -> str:
    path = response_url.removeprefix(chain.emsp.base)
    posted = await chain.wait_pushed(lambda r: r.path == path and r.method == "POST")
    assert len(posted) == 1
    return str(m.CommandResult.model_validate(posted[0].body).result)


async def evse_pushes(chain: Chain) -> list[str]:
    """The EVSE statuses pushed to the eMSP (PATCH of the EVSE object), oldest first."""
    path = f"/emsp/locations/NL/CFW/{LOCATION}/{EVSE_UID}"
    return [m.Status(r.body["status"]).value for r in chain.pushed("locations", "PATCH")
            if r.path == path]


async def wait_evse_pushed(chain: Chain, status: str) -> None:
    async def pushed() -> bool:
        statuses = await evse_pushes(chain)
        return bool(statuses) and statuses[-1] == status

    await wait_until(pushed, what=f"EVSE {status} pushed to the eMSP", interval=0.1)


async def backend_reservation(chain: Chain, reservation_id: str) -> Any:
    partners = await chain.csms.db(chain.csms.store.list_partners)
    return await chain.csms.db(chain.csms.store.reservation_by_ocpi_id, partners[0]["id"],
                               reservation_id)


def authorize_answers(chain: Chain, uid: str) -> list[str]:
    return [e.response["idTagInfo"]["status"] for e in ocpp_exchanges(chain.runtime, "Authorize")
            if e.request == {"idTag": uid} and e.response is not None]


async def test_reservation_is_honoured_for_its_card_only(db: str, tmp_path: Path) -> None:
    async with chain_env(db, tmp_path) as chain:
        await chain.push_token(OTHER_CARD, "ALWAYS")
        url = await reserve(chain, "RES-1", RESERVED_CARD, expires_in_s=120)
        assert await command_result(chain, url) == "ACCEPTED"
        reservation = await backend_reservation(chain, "RES-1")
        assert reservation["status"] == "ACCEPTED"
        [reserve_now] = ocpp_exchanges(chain.runtime, "ReserveNow")
        assert reserve_now.direction == "in" and reserve_now.response == {"status": "Accepted"}
        assert (reserve_now.request["connectorId"], reserve_now.request["idTag"],
                reserve_now.request["reservationId"]) == (1, RESERVED_CARD, reservation["id"])

        connector = await chain.connector(lambda c: c["status"] == "Reserved", "Reserved")
        assert connector["reservation"] == {"reservation_id": reservation["id"],
                                            "id_tag": RESERVED_CARD}
        await chain.evse_status("RESERVED")
        await wait_evse_pushed(chain, "RESERVED")

        # A valid card that is not the reserved one: the backend accepts it, but the
        # reserved connector does not start for it.
        await ctl(chain.sock, "sim.plug")
        assert await chain.tap(OTHER_CARD) == "tag.no_connector"
        assert authorize_answers(chain, OTHER_CARD) == ["Accepted"]
        assert ocpp_exchanges(chain.runtime, "StartTransaction") == []
        assert (await ctl(chain.sock, "status"))["connectors"][0]["reservation"] is not None
        assert (await chain.evse()).status == "RESERVED"

        # The reserved card starts, on the reservation.
        assert await chain.tap(RESERVED_CARD) == "tag.authorized"
        assert authorize_answers(chain, RESERVED_CARD) == ["Accepted"]
        await ctl(chain.sock, "sim.charge")
        await chain.connector(lambda c: c["status"] == "Charging" and c["transaction"]
                              and c["transaction"]["transaction_id"] is not None, "charging")
        [start] = ocpp_exchanges(chain.runtime, "StartTransaction")
        assert (start.request["idTag"], start.request["reservationId"]) == (
            RESERVED_CARD, reservation["id"])

        async def active() -> m.Session | None:
            [session] = await chain.sessions()
            return session if session.status == "ACTIVE" else None

        session = await wait_until(active, what="session ACTIVE", interval=0.1)
        assert (session.cdr_token.uid, session.auth_method) == (RESERVED_CARD, "COMMAND")
        assert (await backend_reservation(chain, "RES-1"))["status"] == "USED"
        await chain.evse_status("CHARGING")
        assert await chain.tap(RESERVED_CARD) == "tag.stopped_session"
        await chain.wait_pushed(lambda r: r.path == "/emsp/cdrs")
        # The reservation is used up: the connector is not Reserved any more.
        await ctl(chain.sock, "sim.unplug")
        connector = await chain.connector(lambda c: c["status"] == "Available", "Available")
        assert connector["reservation"] is None
        await chain.evse_status("AVAILABLE")


async def test_reservation_expires_and_cancel_reservation_frees_the_connector(
        db: str, tmp_path: Path) -> None:
    async with chain_env(db, tmp_path) as chain:
        # Left alone, it ends at its expiry, at the firmware and in OCPI.
        url = await reserve(chain, "RES-2", RESERVED_CARD, expires_in_s=3)
        assert await command_result(chain, url) == "ACCEPTED"
        await chain.connector(lambda c: c["status"] == "Reserved", "Reserved")
        await chain.evse_status("RESERVED")
        await wait_evse_pushed(chain, "RESERVED")
        connector = await chain.connector(lambda c: c["status"] == "Available",
                                          "Available after expiry", timeout=8)
        assert connector["reservation"] is None
        await chain.evse_status("AVAILABLE")
        await wait_evse_pushed(chain, "AVAILABLE")

        async def expired() -> bool:
            return (await backend_reservation(chain, "RES-2"))["status"] == "EXPIRED"

        await wait_until(expired, what="backend reservation EXPIRED", interval=0.1)
        # The expired reservation vouches for nothing any more: the card is unknown to the
        # eMSP, so the backend refuses it.
        assert await chain.tap(RESERVED_CARD) == "tag.rejected"
        assert authorize_answers(chain, RESERVED_CARD) == ["Invalid"]

        # CANCEL_RESERVATION: an unknown one is reported as such; a held one is cancelled.
        url = await reserve(chain, "RES-3", RESERVED_CARD, expires_in_s=120)
        assert await command_result(chain, url) == "ACCEPTED"
        await chain.connector(lambda c: c["status"] == "Reserved", "Reserved")
        await chain.evse_status("RESERVED")
        for reservation_id in ("RES-404", "RES-3"):
            url = f"{chain.emsp.base}/emsp/commands/CANCEL_RESERVATION/{reservation_id}"
            response = await chain.command("CANCEL_RESERVATION", {
                "response_url": url, "reservation_id": reservation_id})
            assert response.result == "ACCEPTED"
            expected = "UNKNOWN_RESERVATION" if reservation_id == "RES-404" else "ACCEPTED"
            assert await command_result(chain, url) == expected
        [cancel] = ocpp_exchanges(chain.runtime, "CancelReservation")
        reservation = await backend_reservation(chain, "RES-3")
        assert cancel.request == {"reservationId": reservation["id"]}
        assert cancel.response == {"status": "Accepted"}
        assert reservation["status"] == "CANCELLED"
        connector = await chain.connector(lambda c: c["status"] == "Available",
                                          "Available after cancel")
        assert connector["reservation"] is None
        await chain.evse_status("AVAILABLE")
        await wait_evse_pushed(chain, "AVAILABLE")
        # Every change went to the eMSP in order (the first: the charger's boot status).
        assert await evse_pushes(chain) == ["AVAILABLE", "RESERVED", "AVAILABLE", "RESERVED",
                                            "AVAILABLE"]
