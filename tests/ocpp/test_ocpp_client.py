"""The OCPP 1.6J client against a test CSMS (the ocpp library's server side) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time

import pytest
from fakes import FakeStation, meter_sample, wait_until
from ocpp_support import running_client
from ocpp_testcsms import CsmsBehaviour, TestCsms

from chargerfw.ocpp import library_log
from chargerfw.ocpp.connection import Backoff
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.store import Store
from chargerfw.timestamps import iso_utc

pytestmark = pytest.mark.timeout(30)


async def test_boot_status_authorize_and_a_whole_session(tmp_path):
    station = FakeStation()
    async with TestCsms() as csms, running_client(tmp_path, csms.url, station=station) as client:
        client.set_status(0, "Available")
        client.set_status(1, "Available")
        await wait_until(lambda: client.online)
        assert csms.paths == ["/ocpp/CP1"] and csms.subprotocols == ["ocpp1.6"]
        boot = csms.of("BootNotification")[0].payload
        assert boot == {"chargePointModel": "test", "chargePointVendor": "chargerfw",
                        "firmwareVersion": "0.1"}
        await csms.wait_for(lambda: len(csms.of("StatusNotification")) == 2)
        assert [(r.payload["connectorId"], r.payload["status"], r.payload["errorCode"])
                for r in csms.of("StatusNotification")] == [(0, "Available", "NoError"),
                                                             (1, "Available", "NoError")]
        # The interval from BootNotification.conf becomes HeartbeatInterval.
        assert client.keys.get_int("HeartbeatInterval") == 300

        assert await client.authorize("04AABBCC") == {"status": "Accepted"}
        assert station.infos == [("04AABBCC", {"status": "Accepted"})]

        client.keys.change("MeterValueSampleInterval", "1")
        client.keys.change("MeterValuesSampledData", "Energy.Active.Import.Register,Current.Import")
        client.update_meter(1, meter_sample(1000))
        tx = client.start_transaction(1, "04AABBCC", 1000)
        await csms.wait_for(lambda: csms.of("StartTransaction"))
        client.update_meter(1, meter_sample(1100))
        await csms.wait_for(lambda: csms.of("MeterValues"), timeout=5)
        client.update_meter(1, meter_sample(1234))
        assert client.stop_transaction(1, 1234, "Local", id_tag="04AABBCC")
        await csms.wait_for(lambda: csms.of("StopTransaction"))

        start = csms.of("StartTransaction")[0].payload
        assert {k: start[k] for k in ("connectorId", "idTag", "meterStart")} == {
            "connectorId": 1, "idTag": "04AABBCC", "meterStart": 1000}
        mv = csms.of("MeterValues")[0].payload
        assert mv["transactionId"] == 1000 and mv["connectorId"] == 1
        values = mv["meterValue"][0]["sampledValue"]
        assert values[0] == {"value": "1100", "context": "Sample.Periodic",
                             "measurand": "Energy.Active.Import.Register", "location": "Outlet",
                             "unit": "Wh"}
        assert [(v["measurand"], v.get("phase"), v["value"]) for v in values[1:]] == [
            ("Current.Import", "L1", "10.5"), ("Current.Import", "L2", "10.6"),
            ("Current.Import", "L3", "10.4")]
        stop_call = csms.of("StopTransaction")[0]
        stop = stop_call.payload
        # The exact frame on the wire (compact JSON, camelCase, no nulls).
        assert stop_call.frame == json.dumps(
            [2, stop_call.unique_id, "StopTransaction",
             {"meterStop": 1234, "timestamp": stop["timestamp"], "transactionId": 1000,
              "reason": "Local", "idTag": "04AABBCC"}], separators=(",", ":"))
        assert await client.flush(5.0) is True
        assert station.confirmed == [(1, tx.local_id, 1000, "04AABBCC", {"status": "Accepted"})]
        await wait_until(lambda: client.store.outbox_head() is None)
        assert client.store.transaction(tx.local_id).backend_tx_id == 1000


async def test_heartbeat_follows_interval(tmp_path):
    async with TestCsms(CsmsBehaviour(boot_interval=1)) as csms, \
            running_client(tmp_path, csms.url) as client:
        await csms.wait_for(lambda: len(csms.of("Heartbeat")) >= 2, timeout=5)
        assert client.clock_offset_s is not None and abs(client.clock_offset_s) < 2
        assert csms.of("Heartbeat")[0].payload == {}


async def test_pending_answers_backend_then_boots_again(tmp_path):
    behaviour = CsmsBehaviour(boot_status="Pending", boot_interval=1)
    async with TestCsms(behaviour) as csms, running_client(tmp_path, csms.url) as client:
        client.set_status(1, "Available")
        client.start_transaction(1, "TAG", 0)
        await csms.wait_for(lambda: csms.of("BootNotification"))
        # While Pending the backend may configure the charge point, and gets answers.
        reply = await csms.send_raw('[2,"g1","GetConfiguration",{"key":["HeartbeatInterval"]}]', "g1")
        assert reply == [3, "g1", {"configurationKey": [
            {"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}]
        await asyncio.sleep(0.3)
        assert csms.actions() == ["BootNotification"]  # nothing else while Pending
        behaviour.boot_status = "Accepted"
        await csms.wait_for(lambda: csms.of("StartTransaction"), timeout=5)
        assert csms.actions()[:2] == ["BootNotification", "BootNotification"]
        assert client.online


async def test_rejected_sends_nothing_and_ignores_backend(tmp_path):
    behaviour = CsmsBehaviour(boot_status="Rejected", boot_interval=1)
    async with TestCsms(behaviour) as csms, running_client(tmp_path, csms.url) as client:
        client.set_status(1, "Available")
        await wait_until(lambda: client.registration == "Rejected")
        with pytest.raises(TimeoutError):
            await csms.send_raw('[2,"h1","GetConfiguration",{}]', "h1", timeout=0.3)
        assert csms.actions() == ["BootNotification"]
        assert not client.online
        await csms.wait_for(lambda: len(csms.of("BootNotification")) == 2, timeout=5)


async def test_outbox_replay_after_backend_outage(tmp_path):
    """Backend down in the middle of a session: messages queue on disk, then go out in order
    with the backend's transactionId, after the backend is back on the same port."""
    csms = TestCsms(CsmsBehaviour(first_tx_id=555))
    await csms.start()
    port = csms.port
    async with running_client(tmp_path, csms.url, keys_overrides={
            "MeterValueSampleInterval": "1"}) as client:
        await wait_until(lambda: client.online)
        client.update_meter(1, meter_sample(10))
        await csms.stop()
        await csms.drop_connections()
        await wait_until(lambda: not client.online)
        # Offline: the whole session happens without the backend.
        tx = client.start_transaction(1, "TAGX", 10)
        for wh in (20, 30, 40):
            client.update_meter(1, meter_sample(wh))
            client.sampler.make_due(1)
            client.sampler.sample_due()
        client.stop_transaction(1, 45, "EVDisconnected")
        queued = [m.action for m in client.store.outbox_pending()]
        assert queued[0] == "StartTransaction" and queued[-1] == "StopTransaction"
        assert queued.count("MeterValues") >= 3
        await csms.start(port=port)
        await csms.wait_for(lambda: csms.of("StopTransaction"), timeout=10)
        tx_actions = [a for a in csms.actions() if a in ("StartTransaction", "MeterValues",
                                                         "StopTransaction")]
        assert tx_actions == queued
        assert {r.payload["transactionId"] for r in csms.of("MeterValues")} == {555}
        assert csms.of("StopTransaction")[0].payload["transactionId"] == 555
        energies = [int(r.payload["meterValue"][0]["sampledValue"][0]["value"])
                    for r in csms.of("MeterValues")]
        assert energies == sorted(energies) and energies[-1] == 40
        assert client.store.transaction(tx.local_id).backend_tx_id == 555
        await csms.stop()


async def test_start_call_errors_retry_with_growing_interval_then_succeed(tmp_path):
    behaviour = CsmsBehaviour(start_errors=2)
    async with TestCsms(behaviour) as csms, running_client(tmp_path, csms.url, keys_overrides={
            "TransactionMessageRetryInterval": "1", "TransactionMessageAttempts": "3"}) as client:
        await wait_until(lambda: client.online)
        client.start_transaction(1, "TAG", 0)
        client.stop_transaction(1, 5, "Local")
        await csms.wait_for(lambda: csms.of("StopTransaction"), timeout=10)
        starts = [r for r in csms.received if r.action == "StartTransaction"]
        assert len(starts) == 3
        assert len({r.unique_id for r in starts}) == 1  # a resend keeps its unique id
        # TransactionMessageRetryInterval x number of failures so far: 1 s, then 2 s.
        gaps = [b.at - a.at for a, b in zip(starts, starts[1:], strict=False)]
        assert 0.9 < gaps[0] < 1.8 and 1.9 < gaps[1] < 3.0, gaps
        assert csms.of("StopTransaction")[0].payload["transactionId"] == 1000


async def test_start_refused_too_often_is_dead_lettered(tmp_path):
    behaviour = CsmsBehaviour(start_errors=2)
    async with TestCsms(behaviour) as csms, running_client(tmp_path, csms.url, keys_overrides={
            "TransactionMessageRetryInterval": "0", "TransactionMessageAttempts": "2"}) as client:
        await wait_until(lambda: client.online)
        tx = client.start_transaction(1, "TAG", 0)
        client.stop_transaction(1, 5, "Local")
        second = client.start_transaction(2, "TAG2", 0)
        await csms.wait_for(lambda: len(csms.of("StartTransaction")) == 3, timeout=10)
        await wait_until(lambda: client.store.outbox_head() is None)
        # The refused session's stop is never sent with a made-up id; the next session proceeds.
        assert csms.of("StopTransaction") == []
        assert [r.payload["idTag"] for r in csms.of("StartTransaction")] == ["TAG", "TAG", "TAG2"]
        assert client.store.transaction(tx.local_id).start_status == "Refused"
        assert client.store.transaction(second.local_id).backend_tx_id is not None


BAD_FRAMES = [
    ("not json at all", "-1", "FormationViolation"),
    ('{"a": 1}', "-1", "FormationViolation"),
    ('[2, "b1", "Reset"]', "b1", "FormationViolation"),
    ('[2, "b2", "Reset", []]', "b2", "FormationViolation"),
    ('[7, "b3", "Reset", {}]', "b3", "FormationViolation"),
    ('[2, "b4", "FlyToTheMoon", {}]', "b4", "NotSupported"),
    ('[2, "b5", "UpdateFirmware", {"location": "http://x", "retrieveDate": "2020-01-01T00:00:00Z"}]',
     "b5", "NotImplemented"),
    ('[2, "b6", "Reset", {}]', "b6", "OccurenceConstraintViolation"),
    ('[2, "b7", "Reset", {"type": 5}]', "b7", "TypeConstraintViolation"),
    ('[2, "b8", "Reset", {"type": "Medium"}]', "b8", "PropertyConstraintViolation"),
    ('[2, "b9", "Reset", {"type": "Soft", "extra": 1}]', "b9", "FormationViolation"),
    ('[2, "b10", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": 3}]', "b10",
     "TypeConstraintViolation"),
    ('[2, "b11", "RemoteStartTransaction", {"idTag": "TOO-LONG-ID-TAG-0123456789"}]', "b11",
     "TypeConstraintViolation"),
]


async def test_malformed_backend_frames_get_call_errors(tmp_path):
    station = FakeStation()
    async with TestCsms() as csms, running_client(tmp_path, csms.url, station=station) as client:
        await wait_until(lambda: client.online)
        for frame, reply_id, code in BAD_FRAMES:
            reply = await csms.send_raw(frame, reply_id)
            assert reply[0] == 4 and reply[1] == reply_id and reply[2] == code, (frame, reply)
        # Still alive and unchanged: a well-formed call works, nothing reached the station.
        assert station.calls == []
        assert client.store.config_get("HeartbeatInterval") == "300"
        reply = await csms.send_raw('[2,"ok","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]', "ok")
        assert reply == [3, "ok", {"status": "Accepted"}]
        assert client.connection.health.connects == 1


async def test_backend_commands_reach_the_station(tmp_path):
    station = FakeStation()
    async with TestCsms() as csms, running_client(tmp_path, csms.url, station=station) as client:
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


async def test_frame_log_redacts_authorization_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ocpp")
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
        await wait_until(lambda: client.online)
        secret = "0123456789abcdef0123"
        reply = await csms.send_raw(json.dumps(
            [2, "k1", "ChangeConfiguration", {"key": "AuthorizationKey", "value": secret}]), "k1")
        assert reply == [3, "k1", {"status": "Accepted"}]
        frames = [f.frame for f in client.store.frame_log()]
        assert any('"AuthorizationKey"' in f and '"***"' in f for f in frames)
        assert not any(secret in f for f in frames)
        assert frames[0].startswith('[2,') and '"BootNotification"' in frames[0]
        # The ocpp library's own frame logging: redacted and kept at DEBUG.
        # (The test CSMS's server side logs through the same "ocpp" logger: leave it out.)
        ours = [r for r in caplog.records if r.name == "ocpp" and r.pathname == library_log.__file__]
        assert any("receive message" in r.getMessage() for r in ours)
        assert all(r.levelno == logging.DEBUG for r in ours if "message" in r.getMessage())
        assert not any(secret in r.getMessage() for r in ours)
        assert any('"***"' in r.getMessage() for r in ours)


async def test_send_local_list(tmp_path):
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
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


async def test_client_from_station_config(tmp_path):
    import tomllib

    from chargerfw.config import parse_config
    from chargerfw.ocpp.v16.client import client_from_config

    async with TestCsms(password="config-password-1") as csms:
        config = parse_config(tomllib.loads(f"""
[station]
id = "CP1"
vendor = "acme"
[ocpp]
url = "{csms.url}"
security_profile = 1
password = "config-password-1"
[[connector]]
id = 1
phases = 1
[connector.meter]
model = "eastron-sdm120"
transport = "tcp"
[connector.contactor]
pin = 17
[connector.pilot]
pwm_pin = 18
"""))
        store = Store(tmp_path / "s.db")
        client = client_from_config(config, store)
        client.connection.backoff = Backoff(initial_s=0.05, maximum_s=0.1, floor_s=0.01)
        task = asyncio.create_task(client.run())
        try:
            await wait_until(lambda: client.online)
            boot = csms.of("BootNotification")[0].payload
            assert boot["chargePointVendor"] == "acme" and boot["meterType"] == "eastron-sdm120"
            snapshot = client.status_snapshot()
            assert snapshot["online"] and snapshot["registration"] == "Accepted"
            assert snapshot["link"]["state"] == "connected" and snapshot["outbox_pending"] == 0
            assert client.keys.get_int("NumberOfConnectors") == 1
            assert client.keys.get_int("SecurityProfile") == 1
        finally:
            await client.close()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            store.close()


async def test_trigger_message(tmp_path):
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
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
        assert await trigger("t4", {"requestedMessage": "FirmwareStatusNotification"}) == {"status": "NotImplemented"}
        assert await trigger("t5", {"requestedMessage": "Heartbeat", "connectorId": 5}) == {"status": "Rejected"}


async def test_flush_waits_for_the_latest_statuses_while_online(tmp_path):
    # On SIGTERM the station flushes before closing: the backend must not keep showing the
    # connector as it was before the last change.
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
        await wait_until(lambda: client.online)
        client.set_status(1, "Finishing")
        client.set_status(1, "Available")
        assert await client.flush(3) is True
        assert [r.payload["status"] for r in csms.of("StatusNotification")
                if r.payload["connectorId"] == 1][-1] == "Available"

        csms.behaviour.swallow.add("StatusNotification")  # a backend that never answers
        client.set_status(1, "Preparing")
        started = time.monotonic()
        assert await client.flush(0.5) is False
        assert 0.5 <= time.monotonic() - started < 5  # gave up at its timeout, not later


# -- MinimumStatusDuration ------------------------------------------------------------------

def statuses_of(csms: TestCsms, connector_id: int) -> list[str]:
    return [r.payload["status"] for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id]


def status_calls(csms: TestCsms, connector_id: int, status: str) -> list:
    return [r for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id and r.payload["status"] == status]


async def online_and_available(client: OcppClient, csms: TestCsms) -> None:
    """A first status goes out at once whatever the duration: nothing to settle against."""
    client.set_status(1, "Available")
    await wait_until(lambda: client.online)
    await csms.wait_for(lambda: statuses_of(csms, 1) == ["Available"], timeout=3)


async def test_a_status_that_flips_back_within_the_duration_is_never_sent(tmp_path):
    async with TestCsms() as csms, running_client(
            tmp_path, csms.url, keys_overrides={"MinimumStatusDuration": "1"}) as client:
        await online_and_available(client, csms)
        client.set_status(1, "Preparing")  # e.g. a plug wiggled in and out
        await asyncio.sleep(0.3)
        client.set_status(1, "Available")
        await asyncio.sleep(1.3)  # past the duration of both changes
        assert statuses_of(csms, 1) == ["Available"]
        assert await client.flush(1) is True
        assert statuses_of(csms, 1) == ["Available"]


async def test_a_status_that_lasts_is_sent_once_after_the_duration(tmp_path):
    async with TestCsms() as csms, running_client(
            tmp_path, csms.url, keys_overrides={"MinimumStatusDuration": "1"}) as client:
        await online_and_available(client, csms)
        began = time.monotonic()
        began_wall = time.time()
        client.set_status(1, "Preparing")
        await asyncio.sleep(0.5)
        client.set_status(1, "Preparing")  # the same status again does not restart the clock
        await csms.wait_for(lambda: status_calls(csms, 1, "Preparing"), timeout=3)
        (sent,) = status_calls(csms, 1, "Preparing")
        assert sent.at - began >= 1.0
        # The timestamp says when the status began, not when it was found stable.
        assert sent.payload["timestamp"][:19] == iso_utc(began_wall)[:19]
        await asyncio.sleep(0.5)
        assert statuses_of(csms, 1) == ["Available", "Preparing"]


async def test_faulted_is_sent_at_once_and_its_recovery_after_the_duration(tmp_path):
    # Margins are wide (a 3 s duration, "at once" meaning well inside it) for a loaded CI.
    async with TestCsms() as csms, running_client(
            tmp_path, csms.url, keys_overrides={"MinimumStatusDuration": "3"}) as client:
        await online_and_available(client, csms)
        client.set_status(1, "Preparing")
        await asyncio.sleep(0.1)
        faulted_at = time.monotonic()
        client.set_status(1, "Faulted", "GroundFailure")
        await csms.wait_for(lambda: status_calls(csms, 1, "Faulted"), timeout=2.5)
        (fault,) = status_calls(csms, 1, "Faulted")
        assert fault.at - faulted_at < 2.5 and fault.payload["errorCode"] == "GroundFailure"
        cleared_at = time.monotonic()
        client.set_status(1, "Available")
        await csms.wait_for(lambda: len(status_calls(csms, 1, "Available")) == 2, timeout=8)
        assert status_calls(csms, 1, "Available")[-1].at - cleared_at >= 3.0
        # The Preparing that the fault cut short never reached the backend.
        assert statuses_of(csms, 1) == ["Available", "Faulted", "Available"]


async def test_duration_zero_sends_every_change_at_once(tmp_path):
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
        assert client.keys.get_int("MinimumStatusDuration") == 0
        await online_and_available(client, csms)
        for count, status in enumerate(("Preparing", "Available", "Preparing"), start=2):
            changed_at = time.monotonic()
            client.set_status(1, status)
            await csms.wait_for(lambda n=count: len(statuses_of(csms, 1)) == n, timeout=3)
            assert csms.of("StatusNotification")[-1].at - changed_at < 3
        assert statuses_of(csms, 1) == ["Available", "Preparing", "Available", "Preparing"]


async def test_minimum_status_duration_changed_at_run_time(tmp_path):
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
        await online_and_available(client, csms)

        async def change(uid: str, value: str) -> None:
            reply = await csms.send_raw(json.dumps([2, uid, "ChangeConfiguration", {
                "key": "MinimumStatusDuration", "value": value}]), uid)
            assert reply == [3, uid, {"status": "Accepted"}]

        await change("m1", "1")
        changed_at = time.monotonic()
        client.set_status(1, "Preparing")
        await csms.wait_for(lambda: status_calls(csms, 1, "Preparing"), timeout=3)
        assert status_calls(csms, 1, "Preparing")[0].at - changed_at >= 1.0

        # A longer duration holds a change back; setting 0 releases what was settling at once.
        await change("m2", "60")
        client.set_status(1, "Charging")
        await asyncio.sleep(0.3)
        assert "Charging" not in statuses_of(csms, 1)
        released_at = time.monotonic()
        await change("m3", "0")
        await csms.wait_for(lambda: status_calls(csms, 1, "Charging"), timeout=5)
        assert status_calls(csms, 1, "Charging")[0].at - released_at < 5  # not the 60 s
        assert statuses_of(csms, 1) == ["Available", "Preparing", "Charging"]


async def test_flush_sends_a_settling_status_without_waiting_out_the_duration(tmp_path):
    async with TestCsms() as csms, running_client(
            tmp_path, csms.url, keys_overrides={"MinimumStatusDuration": "60"}) as client:
        await online_and_available(client, csms)
        client.set_status(1, "Preparing")
        client.set_status(1, "Unavailable")  # the last status before shutting down
        started = time.monotonic()
        assert await client.flush(3) is True
        assert time.monotonic() - started < 5  # not the 60 s
        assert statuses_of(csms, 1) == ["Available", "Unavailable"]
