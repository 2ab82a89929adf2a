"""OCPI commands (Receiver) driving a charger double: sessions, unlock, reservations."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from csms_doubles import ocpi_env, ok, sim_charger, token_body

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_commands_drive_the_charger(db: str) -> None:
    async with ocpi_env(db, command_timeout_s=2.0) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        cmd = f"{V}/commands"
        async with sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Available")
            start = await client.post(f"{cmd}/START_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/START_SESSION/1",
                "token": token_body("APP1") | {"type": "APP_USER"},
                "location_id": "LOC1", "evse_uid": "CP1-1",
                "authorization_reference": "AUTHREF1"})
            response = ok(start, m.CommandResponse)
            assert response.result == "ACCEPTED" and response.timeout > 0
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/START_SESSION/1")
            assert m.CommandResult.model_validate(result[0].body).result == "ACCEPTED"
            assert charger.received[0] == ("RemoteStartTransaction",
                                           {"id_tag": "APP1", "connector_id": 1})
            # The charger starts with that idTag: it is accepted and tied to the command.
            assert await charger.authorize("APP1") == "Accepted"
            tx = await charger.start_tx(1, "APP1", 0, T0)
            session = ok(await client.get(f"{V}/sessions", headers=env.auth),
                         list[m.Session])[0]
            assert session.auth_method == "COMMAND"
            assert session.authorization_reference == "AUTHREF1"
            assert session.cdr_token.type == "APP_USER"

            stop = await client.post(f"{cmd}/STOP_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/STOP_SESSION/2",
                "session_id": session.id})
            assert ok(stop, m.CommandResponse).result == "ACCEPTED"
            await emsp.wait_for(lambda r: r.path == "/emsp/commands/STOP_SESSION/2")
            assert charger.received[-1] == ("RemoteStopTransaction",
                                            {"transaction_id": tx.transaction_id})
            unknown = await client.post(f"{cmd}/STOP_SESSION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/x", "session_id": "nope"})
            assert ok(unknown, m.CommandResponse).result == "UNKNOWN_SESSION"

            charger.answers["UnlockConnector"] = "UnlockFailed"
            unlock = await client.post(f"{cmd}/UNLOCK_CONNECTOR", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/UNLOCK/3", "location_id": "LOC1",
                "evse_uid": "CP1-1", "connector_id": "1"})
            assert ok(unlock, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/UNLOCK/3")
            assert result[0].body == {"result": "FAILED"}

            charger.silent.add("UnlockConnector")
            await client.post(f"{cmd}/UNLOCK_CONNECTOR", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/UNLOCK/4", "location_id": "LOC1",
                "evse_uid": "CP1-1", "connector_id": "1"})
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/UNLOCK/4")
            assert result[0].body == {"result": "TIMEOUT"}

        offline = await client.post(f"{cmd}/UNLOCK_CONNECTOR", headers=env.auth, json={
            "response_url": f"{emsp.base}/emsp/x", "location_id": "LOC1",
            "evse_uid": "CP1-1", "connector_id": "1"})
        assert ok(offline, m.CommandResponse).result == "REJECTED"


async def test_reservation_honoured_cancelled_and_expired(db: str) -> None:
    async with ocpi_env(db) as env:
        csms, emsp, client = env.csms, env.emsp, env.client
        cmd = f"{V}/commands"
        expiry = datetime.now(UTC) + timedelta(minutes=30)
        async with sim_charger(csms, "CP1") as charger:
            reserve = await client.post(f"{cmd}/RESERVE_NOW", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/RESERVE/1",
                "token": token_body("RES1"), "reservation_id": "R-1",
                "expiry_date": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "location_id": "LOC1", "evse_uid": "CP1-1"})
            assert ok(reserve, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/RESERVE/1")
            assert result[0].body == {"result": "ACCEPTED"}
            action, payload = charger.received[-1]
            assert action == "ReserveNow" and payload["id_tag"] == "RES1"
            reservation_id = payload["reservation_id"]
            await charger.status(1, "Reserved")
            location = ok(await client.get(f"{V}/locations/LOC1", headers=env.auth),
                          m.Location)
            assert location.evses[0].status == "RESERVED"
            # Honoured: the holder starts on the reserved connector.
            tx = await charger.start_tx(1, "RES1", 0, T0, reservation_id=reservation_id)
            assert tx.id_tag_info["status"] == "Accepted"
            reservation = await csms.db(csms.store.get_reservation, reservation_id)
            assert reservation["status"] == "USED"

            # A second reservation is cancelled, a third expires.
            for rid, path in (("R-2", "RESERVE/2"), ("R-3", "RESERVE/3")):
                # R-3 expires soon, but not before a loaded machine has carried the command
                # (an expiry already past is refused at once, with no result to wait for).
                exp = datetime.now(UTC) + (timedelta(minutes=30) if rid == "R-2"
                                           else timedelta(seconds=4))
                await client.post(f"{cmd}/RESERVE_NOW", headers=env.auth, json={
                    "response_url": f"{emsp.base}/emsp/commands/{path}",
                    "token": token_body("RES2"), "reservation_id": rid,
                    "expiry_date": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "location_id": "LOC1", "evse_uid": "CP1-1"})
                await emsp.wait_for(lambda r, p=path: r.path == f"/emsp/commands/{p}")
            cancel = await client.post(f"{cmd}/CANCEL_RESERVATION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/CANCEL/1", "reservation_id": "R-2"})
            assert ok(cancel, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/CANCEL/1")
            assert result[0].body == {"result": "ACCEPTED"}
            assert charger.received[-1][0] == "CancelReservation"
            unknown = await client.post(f"{cmd}/CANCEL_RESERVATION", headers=env.auth, json={
                "response_url": f"{emsp.base}/emsp/commands/CANCEL/2", "reservation_id": "R-9"})
            assert ok(unknown, m.CommandResponse).result == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/CANCEL/2")
            assert result[0].body == {"result": "UNKNOWN_RESERVATION"}
        r2 = await csms.db(csms.store.reservation_by_ocpi_id, 1, "R-2")
        assert r2["status"] == "CANCELLED"
        for _ in range(150):
            r3 = await csms.db(csms.store.reservation_by_ocpi_id, 1, "R-3")
            if r3["status"] == "EXPIRED":
                break
            await asyncio.sleep(0.1)
        assert r3["status"] == "EXPIRED"
