"""The whole chain, commands: START_SESSION and STOP_SESSION from the eMSP reach the real
firmware (simulated hardware) as OCPP RemoteStart/RemoteStopTransaction, the CommandResults
come back to the eMSP's response_url, and the session goes ACTIVE, then COMPLETED with a CDR.
Run on SQLite and on PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

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

APP_TOKEN = "APP-USER-0042"


async def command_result(chain: Chain, response_url: str) -> m.CommandResult:
    """The CommandResult the backend POSTed to ``response_url`` (exactly one)."""
    path = response_url.removeprefix(chain.emsp.base)
    posted = await chain.wait_pushed(lambda r: r.path == path and r.method == "POST")
    assert len(posted) == 1
    return m.CommandResult.model_validate(posted[0].body)


async def test_start_and_stop_session_commands_drive_the_firmware(db: str,
                                                                  tmp_path: Path) -> None:
    async with running_chain(db, tmp_path, energy_per_kwh=0.30, time_per_hour=0.0, flat=0.0,
                             vat=0.0) as chain:
        await ctl(chain.sock, "sim.plug")  # the driver plugs in, then starts from the app
        await chain.connector(lambda c: c["status"] == "Preparing", "Preparing")

        # An unknown session cannot be stopped; nothing reaches the charger.
        unknown = await chain.command("STOP_SESSION", {
            "response_url": f"{chain.emsp.base}/emsp/commands/STOP_SESSION/0",
            "session_id": "no-such-session"})
        assert unknown.result == "UNKNOWN_SESSION"

        start_url = f"{chain.emsp.base}/emsp/commands/START_SESSION/1"
        token = token_body(APP_TOKEN, "ALLOWED", type="APP_USER")
        response = await chain.command("START_SESSION", {
            "response_url": start_url, "token": token, "location_id": LOCATION,
            "evse_uid": EVSE_UID, "authorization_reference": "AUTH-REF-7"})
        assert response.result == "ACCEPTED" and response.timeout > 0

        result = await command_result(chain, start_url)
        assert result.result == "ACCEPTED"
        [remote_start] = ocpp_exchanges(chain.runtime, "RemoteStartTransaction")
        assert remote_start.direction == "in"
        assert remote_start.request == {"idTag": APP_TOKEN, "connectorId": 1}
        assert remote_start.response == {"status": "Accepted"}

        await ctl(chain.sock, "sim.charge")
        connector = await chain.connector(
            lambda c: c["status"] == "Charging" and c["transaction"]
            and c["transaction"]["transaction_id"] is not None, "charging, tx confirmed")
        assert connector["transaction"]["id_tag"] == APP_TOKEN
        [start] = ocpp_exchanges(chain.runtime, "StartTransaction")
        assert start.request["idTag"] == APP_TOKEN
        assert start.response is not None
        assert start.response["idTagInfo"]["status"] == "Accepted"

        async def active() -> m.Session | None:
            [session] = await chain.sessions()
            return session if session.status == "ACTIVE" and session.kwh > 0 else None

        session = await wait_until(active, what="session ACTIVE with energy", interval=0.1)
        assert (session.auth_method, session.cdr_token.uid, session.cdr_token.type,
                session.authorization_reference, session.evse_uid) == (
            "COMMAND", APP_TOKEN, "APP_USER", "AUTH-REF-7", EVSE_UID)
        await chain.evse_status("CHARGING")

        stop_url = f"{chain.emsp.base}/emsp/commands/STOP_SESSION/2"
        response = await chain.command("STOP_SESSION", {"response_url": stop_url,
                                                        "session_id": session.id})
        assert response.result == "ACCEPTED"
        result = await command_result(chain, stop_url)
        assert result.result == "ACCEPTED"
        [remote_stop] = ocpp_exchanges(chain.runtime, "RemoteStopTransaction")
        assert remote_stop.request == {
            "transactionId": connector["transaction"]["transaction_id"]}
        assert remote_stop.response == {"status": "Accepted"}

        posted = await chain.wait_pushed(lambda r: r.path == "/emsp/cdrs")
        cdr = m.CDR.model_validate(posted[0].body)
        [stop] = ocpp_exchanges(chain.runtime, "StopTransaction")
        assert stop.request["reason"] == "Remote"
        assert chain.runtime.store is not None
        [record] = chain.runtime.store.transactions()
        delta_kwh = Decimal(record.meter_stop_wh - record.meter_start_wh) / 1000
        assert record.state == "stopped" and delta_kwh > 0
        assert cdr.total_energy == delta_kwh
        assert (cdr.session_id, cdr.auth_method, cdr.cdr_token.uid) == (
            session.id, "COMMAND", APP_TOKEN)
        assert float(cdr.total_cost.excl_vat) == pytest.approx(float(delta_kwh) * 0.30,
                                                               abs=1e-4)
        [completed] = await chain.sessions()
        assert (completed.id, completed.status, completed.kwh) == (
            session.id, "COMPLETED", delta_kwh)
        pushed = [m.Session.model_validate(r.body) for r in chain.pushed("sessions", "PUT")]
        assert [s.status for s in pushed] == ["ACTIVE", "COMPLETED"]

        # Stopping it again is refused at once: the session has ended.
        again = await chain.command("STOP_SESSION", {
            "response_url": f"{chain.emsp.base}/emsp/commands/STOP_SESSION/3",
            "session_id": session.id})
        assert again.result == "REJECTED"
        assert len(ocpp_exchanges(chain.runtime, "RemoteStopTransaction")) == 1
