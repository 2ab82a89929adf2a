"""The backend's commands reaching the station, the configuration and the local list, and
TriggerMessage, over an in-memory link."""

from __future__ import annotations

import json

import pytest
from fakes import FakeStation, meter_sample, wait_until
from ocpp_support import memory_client
from ocpp_testcsms import TestCsms

pytestmark = pytest.mark.timeout(30)


async def test_backend_commands_reach_the_station(tmp_path):
    station = FakeStation()
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=station) as client:
        await wait_until(lambda: client.online)
        tx = client.start_transaction(1, "TAG", 0)
        await wait_until(lambda: client.store.transaction(tx.local_id).backend_tx_id is not None)
        backend_id = client.store.transaction(tx.local_id).backend_tx_id

        async def ask(uid, action, payload):
            return await csms.send_raw(json.dumps([2, uid, action, payload]), uid)

        assert (await ask("r1", "RemoteStartTransaction", {"idTag": "T2", "connectorId": 2}))[2] == {"status": "Accepted"}
        assert (await ask("r2", "RemoteStartTransaction", {"idTag": "T2", "connectorId": 9}))[2] == {"status": "Rejected"}
        assert (await ask("r3", "RemoteStopTransaction", {"transactionId": backend_id}))[2] == {"status": "Accepted"}
        assert (await ask("r4", "RemoteStopTransaction", {"transactionId": 424242}))[2] == {"status": "Rejected"}
        station.availability_answer = "Scheduled"
        assert (await ask("r5", "ChangeAvailability", {"connectorId": 1, "type": "Inoperative"}))[2] == {"status": "Scheduled"}
        assert (await ask("r6", "UnlockConnector", {"connectorId": 1}))[2] == {"status": "Unlocked"}
        assert (await ask("r7", "UnlockConnector", {"connectorId": 7}))[2] == {"status": "NotSupported"}
        client.store.cache_clear()
        assert (await ask("r8", "ClearCache", {}))[2] == {"status": "Accepted"}
        assert (await ask("r9", "DataTransfer", {"vendorId": "acme"}))[2] == {"status": "UnknownVendorId"}
        assert (await ask("r10", "Reset", {"type": "Soft"}))[2] == {"status": "Accepted"}
        assert (await ask("r11", "ChangeConfiguration", {"key": "NumberOfConnectors", "value": "4"}))[2] == {"status": "Rejected"}
        assert (await ask("r12", "ChangeConfiguration", {"key": "Bogus", "value": "4"}))[2] == {"status": "NotSupported"}
        client.keys.change("AuthorizeRemoteTxRequests", "true")
        await ask("r13", "RemoteStartTransaction", {"idTag": "T3"})
        await wait_until(lambda: ("reset", "Soft") in station.calls)
        assert station.calls == [
            ("remote_start", "T2", 2, False), ("remote_stop", 1),
            ("change_availability", 1, False), ("unlock", 1), ("reset", "Soft"),
            ("remote_start", "T3", None, True)]
        got = await ask("r14", "GetConfiguration", {"key": ["NumberOfConnectors", "Nope"]})
        assert got[2] == {"configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": "2"}],
                          "unknownKey": ["Nope"]}
        assert (await ask("r15", "GetLocalListVersion", {}))[2] == {"listVersion": 0}
        assert (await ask("r16", "DataTransfer", {"vendorId": "acme", "data": "x"}))[0] == 3
        result = await client.data_transfer("acme", data="ping")
        assert result == ("Accepted", "hello acme")


async def test_send_local_list(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)

        async def send(uid, payload):
            return (await csms.send_raw(json.dumps([2, uid, "SendLocalList", payload]), uid))[2]

        full = {"listVersion": 2, "updateType": "Full", "localAuthorizationList": [
            {"idTag": "AA", "idTagInfo": {"status": "Accepted", "expiryDate": "2031-01-01T00:00:00+00:00"}},
            {"idTag": "BB", "idTagInfo": {"status": "Blocked"}}]}
        assert await send("l1", full) == {"status": "Accepted"}
        assert client.store.local_list_get("BB").status == "Blocked"
        stale = {"listVersion": 2, "updateType": "Differential",
                 "localAuthorizationList": [{"idTag": "BB"}]}
        assert await send("l2", stale) == {"status": "VersionMismatch"}
        bad = {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": [
            {"idTag": "CC", "idTagInfo": {"status": "Accepted", "expiryDate": "soon"}}]}
        assert await send("l3", bad) == {"status": "Failed"}
        assert client.store.local_list_version() == 2 and client.store.local_list_get("CC") is None
        diff = {"listVersion": 3, "updateType": "Differential", "localAuthorizationList": [{"idTag": "BB"}]}
        assert await send("l4", diff) == {"status": "Accepted"}
        assert client.store.local_list_get("BB") is None
        reply = await csms.send_raw('[2,"v","GetLocalListVersion",{}]', "v")
        assert reply == [3, "v", {"listVersion": 3}]


async def test_trigger_message(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        client.set_status(1, "Available")
        client.set_status(2, "Faulted", "GroundFailure")
        await csms.wait_for(lambda: len(csms.of("StatusNotification")) == 2)
        client.update_meter(1, meter_sample(777))

        async def trigger(uid, payload):
            return (await csms.send_raw(json.dumps([2, uid, "TriggerMessage", payload]), uid))[2]

        assert await trigger("t1", {"requestedMessage": "StatusNotification", "connectorId": 2}) == {"status": "Accepted"}
        await csms.wait_for(lambda: len(csms.of("StatusNotification")) == 3)
        assert csms.of("StatusNotification")[-1].payload["errorCode"] == "GroundFailure"
        assert await trigger("t2", {"requestedMessage": "MeterValues", "connectorId": 1}) == {"status": "Accepted"}
        await csms.wait_for(lambda: csms.of("MeterValues"))
        (mv,) = csms.of("MeterValues")
        assert mv.payload["connectorId"] == 1 and "transactionId" not in mv.payload
        assert mv.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
        assert mv.payload["meterValue"][0]["sampledValue"][0]["value"] == "777"
        assert await trigger("t3", {"requestedMessage": "Heartbeat"}) == {"status": "Accepted"}
        await csms.wait_for(lambda: csms.of("Heartbeat"))
        # No update has run: Idle (OCPP 1.6 4.5: only as the answer to a trigger).
        assert await trigger("t4", {"requestedMessage": "FirmwareStatusNotification"}) == {"status": "Accepted"}
        await csms.wait_for(lambda: csms.of("FirmwareStatusNotification"))
        assert [m.payload for m in csms.of("FirmwareStatusNotification")] == [{"status": "Idle"}]
        assert await trigger("t5", {"requestedMessage": "Heartbeat", "connectorId": 5}) == {"status": "Rejected"}
