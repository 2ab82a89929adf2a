"""The whole chain, local list: the backend builds the list from its token database (site
cards and the eMSP's tokens pushed over OCPI) and the real firmware (simulated hardware)
takes it with SendLocalList: Full in chunks of its SendLocalListMaxLength (100), then only
the changes, and Full again when it holds another version. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from chain_helpers import CHARGER, ocpp_exchanges, running_chain

from chargerfw.csms.local_list import LocalListPusher
from chargerfw.csms.ocpi import models as m
from chargerfw.station.auth import AuthorizationStatus, IdTagInfo

pytestmark = pytest.mark.timeout(90)
EXPIRY = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0)


async def test_the_firmware_takes_the_backends_list(db: str, tmp_path: Path) -> None:
    async with running_chain(db, tmp_path, energy_per_kwh=0.30, time_per_hour=0.0, flat=0.0,
                             vat=0.0) as chain:
        csms, firmware = chain.csms, chain.runtime.store
        assert firmware is not None
        for n in range(100):  # one message's worth of cards handed out at the site
            await csms.db(csms.store.add_local_token, f"BULK{n:03}")
        await csms.db(csms.store.add_local_token, "CARD1", parent_id_tag="FLEET-1",
                      expires_at=EXPIRY)
        await chain.push_token("E-ALWAYS", "ALWAYS")
        await chain.push_token("E-OFFLINE", "ALLOWED_OFFLINE")
        await chain.push_token("E-NEVER", "NEVER")  # always asked of the eMSP: not listed
        pusher = LocalListPusher(csms.db, csms.ocpp)

        first = await pusher.push(CHARGER)
        assert (first.status, first.update_type, first.version, first.messages) == (
            "Accepted", "Full", 2, 2)
        sent = ocpp_exchanges(chain.runtime, "SendLocalList")
        assert [(s.request["updateType"], s.request["listVersion"], s.response)
                for s in sent] == [("Full", 1, {"status": "Accepted"}),
                                   ("Differential", 2, {"status": "Accepted"})]
        assert len(sent[0].request["localAuthorizationList"]) == 100
        assert sent[1].request["localAuthorizationList"] == [
            {"idTag": "CARD1", "idTagInfo": {"status": "Accepted",
                                             "expiryDate": EXPIRY.strftime("%Y-%m-%dT%H:%M:%SZ"),
                                             "parentIdTag": "FLEET-1"}},
            {"idTag": "E-ALWAYS", "idTagInfo": {"status": "Accepted"}},
            {"idTag": "E-OFFLINE", "idTagInfo": {"status": "Accepted"}}]
        accepted = IdTagInfo(AuthorizationStatus.ACCEPTED)
        assert firmware.local_list_version() == 2 and firmware.local_list_size() == 103
        assert firmware.local_list_get("CARD1") == IdTagInfo(
            AuthorizationStatus.ACCEPTED, EXPIRY, "FLEET-1")
        assert firmware.local_list_get("E-OFFLINE") == accepted
        assert firmware.local_list_get("E-NEVER") is None

        assert (await pusher.push(CHARGER)).status == "UpToDate"
        assert len(ocpp_exchanges(chain.runtime, "SendLocalList")) == 2

        # The eMSP blocks one token and stops whitelisting another.
        for uid, patch in (("E-ALWAYS", {"valid": False}),
                           ("E-OFFLINE", {"whitelist": "NEVER"})):
            await csms.db(csms.store.patch_token, "DE", "EMS", uid, "RFID",
                          m.TokenPatch.model_validate(
                              {**patch, "last_updated": "2026-02-01T00:00:00Z"}))
        changed = await pusher.push(CHARGER)
        assert (changed.status, changed.update_type, changed.version) == (
            "Accepted", "Differential", 3)
        last = ocpp_exchanges(chain.runtime, "SendLocalList")[-1]
        assert last.request == {"listVersion": 3, "updateType": "Differential",
                                "localAuthorizationList": [
                                    {"idTag": "E-OFFLINE"},
                                    {"idTag": "E-ALWAYS", "idTagInfo": {"status": "Blocked"}}]}
        assert firmware.local_list_get("E-ALWAYS") == IdTagInfo(AuthorizationStatus.BLOCKED)
        assert firmware.local_list_get("E-OFFLINE") is None

        # The charger's list changed behind the backend's back: the next push is Full.
        firmware.local_list_apply(9, {}, True)
        again = await pusher.push(CHARGER)
        assert (again.status, again.update_type, again.version) == ("Accepted", "Full", 11)
        assert "the charger holds version 9, the backend recorded 3" in again.detail
        assert firmware.local_list_version() == 11 and firmware.local_list_size() == 102
        assert firmware.local_list_get("E-ALWAYS") == IdTagInfo(AuthorizationStatus.BLOCKED)

        # The firmware with its local list switched off answers NotSupported.
        assert await csms.ocpp.change_configuration(CHARGER, "LocalAuthListEnabled",
                                                    "false") == "Accepted"
        await csms.db(csms.store.add_local_token, "CARD2")
        refused = await pusher.push(CHARGER)
        assert (refused.status, refused.version) == ("NotSupported", 11)
        assert "does not support a local list" in refused.detail
        assert firmware.local_list_get("CARD2") is None
