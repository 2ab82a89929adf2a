"""The OCPP 1.6J side of the CSMS against a charger double on loopback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from csms_doubles import (
    ACCEPTED,
    EmspDouble,
    add_test_charger,
    basic_auth,
    csms_running,
    make_tariff,
    register_emsp,
    running_emsp,
    sim_charger,
)
from fakes import wait_until
from ocpp.exceptions import FormationViolationError
from ocpp.v16 import call
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargerfw.csms.db import create_db_engine
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.ocpp_server import ChargerNotConnected
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.store import CpoIdentity, Page, PageQuery, StartRequest, Store

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _token(uid: str, whitelist: str = "ALLOWED", valid: bool = True) -> m.Token:
    return m.Token.model_validate({
        "country_code": "DE", "party_id": "EMS", "uid": uid, "type": "RFID",
        "contract_id": f"DE-EMS-{uid}", "issuer": "Test eMSP", "valid": valid,
        "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z"})


async def _cdrs_built(csms: RunningCsms) -> Page | None:
    cdrs = await csms.db(csms.store.list_cdrs, PageQuery())
    return cdrs if cdrs.total else None


async def test_full_transaction_with_repeated_deliveries(db: str) -> None:
    async with csms_running(db) as csms:
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        await csms.db(add_test_charger, csms.store, "CP1", "s3cret", "T1")
        await csms.db(csms.store.put_token, _token("TAG1"), None)
        async with sim_charger(csms, "CP1", "s3cret") as charger:
            boot = await charger.boot()
            assert boot.status == "Accepted" and boot.interval == 300
            await charger.status(1, "Available")
            assert await charger.authorize("TAG1") == "Accepted"
            started = await charger.start_tx(1, "TAG1", 1000, T0)
            again = await charger.start_tx(1, "TAG1", 1000, T0)  # outbox re-delivery
            assert again.transaction_id == started.transaction_id
            assert started.id_tag_info["status"] == "Accepted"
            await charger.meter(1, started.transaction_id, T0 + timedelta(minutes=5), 2000,
                                amps=16, watts=11000)
            await charger.meter(1, started.transaction_id, T0 + timedelta(minutes=5), 2000)
            await charger.stop_tx(started.transaction_id, 4000, T0 + timedelta(minutes=10), "TAG1")
            await charger.stop_tx(started.transaction_id, 4000, T0 + timedelta(minutes=10), "TAG1")
        sessions = await csms.db(csms.store.list_sessions, PageQuery())
        assert sessions.total == 1
        session = m.Session.model_validate(sessions.items[0])
        assert session.status == "COMPLETED" and float(session.kwh) == 3.0
        # Built by the backend after the stop was answered, once.
        cdrs = await wait_until(lambda: _cdrs_built(csms), what="the CDR")
        assert cdrs.total == 1 and await csms.db(csms.store.build_due_cdrs) == 0
        assert float(m.CDR.model_validate(cdrs.items[0]).total_energy) == 3.0
        charger_row = await csms.db(csms.store.get_charge_point, "CP1")
        assert charger_row["vendor"] == "chargerfw" and charger_row["last_boot"] is not None


async def test_reconnect_replaces_the_old_connection(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as first:
            async with sim_charger(csms, "CP1") as second:
                assert csms.ocpp.connected["CP1"].id == "CP1"
                assert await csms.ocpp.reset("CP1") == "Accepted"
                assert [a for a, _ in second.received] == ["Reset"]
                assert first.received == []


async def test_connection_rules(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "s3cret")
        url = f"{csms.ocpp_url}/CP1"
        with pytest.raises(InvalidStatus) as wrong:
            async with connect(url, subprotocols=["ocpp1.6"],
                               additional_headers=basic_auth("CP1", "nope")):
                pass
        assert wrong.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as missing:
            async with connect(url, subprotocols=["ocpp1.6"]):
                pass
        assert missing.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as other_user:
            async with connect(url, subprotocols=["ocpp1.6"],
                               additional_headers=basic_auth("CP2", "s3cret")):
                pass
        assert other_user.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as proto:
            async with connect(url, subprotocols=["ocpp2.0.1"],
                               additional_headers=basic_auth("CP1", "s3cret")):
                pass
        assert proto.value.response.status_code == 400
        with pytest.raises(InvalidStatus) as unknown:
            async with connect(f"{csms.ocpp_url}/CPX", subprotocols=["ocpp1.6"]):
                pass
        assert unknown.value.response.status_code == 404
        assert await csms.db(csms.store.get_charge_point, "CPX") is None
        async with connect(url, subprotocols=["ocpp1.6"],
                           additional_headers=basic_auth("CP1", "s3cret")) as ws:
            assert ws.subprotocol == "ocpp1.6"


async def test_auto_register(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db"), auto_register=True) as csms:
        async with sim_charger(csms, "NEW1", "pw") as charger:
            assert (await charger.boot()).status == "Accepted"
        row = await csms.db(csms.store.get_charge_point, "NEW1")
        assert row["auto_registered"] is True
        # Its password is now required.
        with pytest.raises(InvalidStatus) as wrong:
            async with connect(f"{csms.ocpp_url}/NEW1", subprotocols=["ocpp1.6"],
                               additional_headers=basic_auth("NEW1", "other")):
                pass
        assert wrong.value.response.status_code == 401


async def test_authorize_whitelist_rules_and_realtime(db: str) -> None:
    async with running_emsp(EmspDouble()) as emsp, csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        await register_emsp(csms, emsp)
        store = csms.store
        for token in (_token("ALWAYS1", "ALWAYS"), _token("ALLOWED1", "ALLOWED"),
                      _token("BLOCKED1", "ALWAYS", valid=False), _token("NEVER1", "NEVER"),
                      _token("OFFLINE1", "ALLOWED_OFFLINE")):
            await csms.db(store.put_token, token, None)
        emsp.authorize_answers["NEVER1"] = {"allowed": "NOT_ALLOWED",
                                            "token": _token("NEVER1").model_dump(mode="json")}
        emsp.authorize_answers["UNKNOWN1"] = {
            "allowed": "ALLOWED", "authorization_reference": "REF-1",
            "token": _token("UNKNOWN1").model_dump(mode="json")}
        emsp.authorize_answers["OFFLINE1"] = {"allowed": "BLOCKED",
                                              "token": _token("OFFLINE1").model_dump(mode="json")}
        # Cards we hold no token for are asked of the eMSP a routing rule names, else nobody.
        await csms.db(store.set_token_route, "UNKNOWN", "DE", "EMS")
        async with sim_charger(csms, "CP1") as charger:
            assert await charger.authorize("ALWAYS1") == "Accepted"
            assert await charger.authorize("ALLOWED1") == "Accepted"
            assert await charger.authorize("BLOCKED1") == "Blocked"
            assert await charger.authorize("NEVER1") == "Invalid"
            assert await charger.authorize("OFFLINE1") == "Blocked"  # eMSP asked first
            assert await charger.authorize("UNKNOWN1") == "Accepted"
            assert await charger.authorize("NOBODY") == "Invalid"
            asked = {r.path.split("/")[3] for r in emsp.received if r.path.endswith("/authorize")}
            assert asked == {"NEVER1", "OFFLINE1", "UNKNOWN1"}
            started = await charger.start_tx(1, "UNKNOWN1", 0, T0)
            assert started.id_tag_info["status"] == "Accepted"
        tx = await csms.db(store.get_transaction, started.transaction_id)
        assert (tx["auth_method"], tx["authorization_reference"]) == ("AUTH_REQUEST", "REF-1")
        assert tx["contract_id"] == "DE-EMS-UNKNOWN1"


async def test_allowed_offline_falls_back_when_emsp_unreachable(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with running_emsp() as emsp:
            await register_emsp(csms, emsp)
        # The eMSP is gone now.
        await csms.db(csms.store.put_token, _token("OFFLINE1", "ALLOWED_OFFLINE"), None)
        await csms.db(csms.store.put_token, _token("NEVER1", "NEVER"), None)
        async with sim_charger(csms, "CP1") as charger:
            assert await charger.authorize("OFFLINE1") == "Accepted"
            assert await charger.authorize("NEVER1") == "Invalid"


async def test_bad_meter_value_is_refused_and_stores_nothing(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        await csms.db(csms.store.put_token, _token("TAG1", "ALWAYS"), None)
        async with sim_charger(csms, "CP1") as charger:
            started = await charger.start_tx(1, "TAG1", 100, T0)
            with pytest.raises(FormationViolationError):  # OCPP 1.6's code for it
                await charger.call(call.MeterValues(
                    connector_id=1, transaction_id=started.transaction_id,
                    meter_value=[{"timestamp": "2026-03-01T10:01:00Z", "sampledValue": [
                        {"value": "500", "measurand": "Energy.Active.Import.Register"},
                        {"value": "lots", "measurand": "Current.Import"}]}]), suppress=False)
            assert (await charger.call(call.DataTransfer(vendor_id="acme"))).status \
                == "UnknownVendorId"
            await charger.call(call.FirmwareStatusNotification(status="Idle"), suppress=False)
            await charger.call(call.DiagnosticsStatusNotification(status="Idle"),
                               suppress=False)
        tx = await csms.db(csms.store.get_transaction, started.transaction_id)
        assert tx["meter_last"] == 100


async def test_outgoing_requests_reach_the_charger(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        ocpp = csms.ocpp
        async with sim_charger(csms, "CP1") as charger:
            assert await ocpp.remote_start_transaction("CP1", "TAG1", 1) == "Accepted"
            assert await ocpp.remote_stop_transaction("CP1", 7) == "Accepted"
            assert await ocpp.reserve_now("CP1", 1, T0, "TAG1", 3) == "Accepted"
            assert await ocpp.cancel_reservation("CP1", 3) == "Accepted"
            assert await ocpp.unlock_connector("CP1", 1) == "Unlocked"
            assert await ocpp.change_availability("CP1", 0, "Inoperative") == "Accepted"
            assert await ocpp.change_configuration("CP1", "HeartbeatInterval", "60") \
                == "Accepted"
            keys, unknown = await ocpp.get_configuration("CP1", ["HeartbeatInterval", "Nope"])
            assert keys[0]["key"] == "HeartbeatInterval" and unknown == ["Nope"]
            assert await ocpp.reset("CP1", "Hard") == "Accepted"
            assert await ocpp.trigger_message("CP1", "StatusNotification", 1) == "Accepted"
            assert await ocpp.send_local_list("CP1", 2, "Full", [
                {"id_tag": "TAG1", "id_tag_info": {"status": "Accepted"}}]) == "Accepted"
            sent = dict(charger.received)
            assert sent["RemoteStartTransaction"] == {"id_tag": "TAG1", "connector_id": 1}
            assert sent["ReserveNow"]["reservation_id"] == 3
            assert sent["Reset"] == {"type": "Hard"}
            assert sent["SendLocalList"]["list_version"] == 2
        with pytest.raises(ChargerNotConnected):
            await ocpp.reset("CP1")


async def test_any_message_from_a_silent_charger_brings_it_back(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    from chargerfw.csms import ocpp_server

    monkeypatch.setattr(ocpp_server, "SEEN_NOTE_INTERVAL_S", 0.0)
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            await charger.status(1, "Available")
            # Connected, but nothing came through for longer than heartbeat + grace.
            later = datetime.now(UTC) + timedelta(hours=1)
            changes = await csms.db(csms.store.sweep_offline, timedelta(minutes=5),
                                    timedelta(minutes=10), later)
            assert [c.status for c in changes] == ["UNKNOWN"]
            assert await charger.authorize("NOBODY") == "Invalid"  # a sign of life
            evses = await csms.db(csms.store.evses_of_location, "LOC1")
            assert [e["status"] for e in evses] == ["AVAILABLE"]
            assert (await csms.db(csms.store.get_charge_point, "CP1"))["offline"] is False


async def test_a_cdr_left_due_by_a_stopped_backend_is_built_when_it_starts(db: str) -> None:
    engine = create_db_engine(db)
    try:
        store = Store(engine, CpoIdentity("NL", "CFW", "Test CPO", "EUR"))
        add_test_charger(store)
        tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), ACCEPTED)
        store.stop_transaction("CP1", tx["id"], 2000, T0 + timedelta(minutes=10), "Local")
    finally:
        engine.dispose()  # stopped before its CDR was built
    async with csms_running(db) as csms:
        cdrs = await wait_until(lambda: _cdrs_built(csms), what="the CDR")
        assert [c["session_id"] for c in cdrs.items] == [tx["session_id"]]
