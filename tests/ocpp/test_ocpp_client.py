"""The OCPP 1.6J client's life cycle against a test CSMS (the ocpp library's server side):
registration, heartbeats and the frame log over an in-memory link; a whole session and the
client built from a station config over a real WebSocket on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest
from fakes import FakeStation, meter_sample, wait_until
from ocpp.exceptions import NotSupportedError
from ocpp_support import MemoryConnection, client_keys, make_client, memory_client, running_client
from ocpp_testcsms import CsmsBehaviour, TestCsms

from chargerfw.ocpp.config_keys import ChangeStatus
from chargerfw.ocpp.connection import Backoff
from chargerfw.ocppj import library_log
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)


async def test_heartbeat_follows_interval(tmp_path):
    async with TestCsms(CsmsBehaviour(boot_interval=1), in_memory=True) as csms, \
            memory_client(tmp_path, csms) as client:
        await csms.wait_for(lambda: len(csms.of("Heartbeat")) >= 2, timeout=5)
        assert client.clock_offset_s is not None and abs(client.clock_offset_s) < 2
        assert csms.of("Heartbeat")[0].payload == {}


async def test_pending_answers_backend_then_boots_again(tmp_path):
    behaviour = CsmsBehaviour(boot_status="Pending", boot_interval=1)
    async with TestCsms(behaviour, in_memory=True) as csms, memory_client(tmp_path, csms) as client:
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
    async with TestCsms(behaviour, in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        client.set_status(1, "Available")
        await wait_until(lambda: client.registration == "Rejected")
        with pytest.raises(TimeoutError):
            await csms.send_raw('[2,"h1","GetConfiguration",{}]', "h1", timeout=0.3)
        assert csms.actions() == ["BootNotification"]
        assert not client.online
        await csms.wait_for(lambda: len(csms.of("BootNotification")) == 2, timeout=5)


async def test_frame_log_redacts_authorization_key(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ocpp")
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        client.keys.set_applier("AuthorizationKey", lambda value: (ChangeStatus.ACCEPTED, ""))
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



def test_library_log_keeps_frames_at_debug_and_answered_call_errors_as_warnings(caplog):
    caplog.set_level(logging.DEBUG, logger="ocpp")
    logger = library_log.LIBRARY_LOGGER
    logger.info("%s: send %s", "CP1",
                '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"s3cret-key"}]')
    try:
        raise NotSupportedError(details={"cause": "FlyToTheMoon"})
    except NotSupportedError:
        logger.exception("Error while handling request '%s'", "FlyToTheMoon")
    try:
        raise ValueError("a handler bug")
    except ValueError:
        logger.exception("Error while handling request '%s'", "Reset")
    assert [(r.levelno, bool(r.exc_info)) for r in caplog.records] == [
        (logging.DEBUG, False), (logging.WARNING, False), (logging.ERROR, True)]
    assert "s3cret-key" not in caplog.records[0].getMessage()
    assert '"***"' in caplog.records[0].getMessage()


async def test_a_cancellation_that_comes_with_the_answer_is_kept(tmp_path):
    """The library's call() returns an answer and drops a cancellation that arrive in the same
    instant (asyncio.wait_for, Python 3.11); the client's CALLs keep it, so a closing session
    does not wait forever for its workers."""

    class AnswerWinsTheRace:
        async def call(self, payload, suppress, unique_id):
            asyncio.current_task().cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(0)  # the answer was already there: the cancel is dropped
            return "the answer"

    store = Store(tmp_path / "s.db")
    client = make_client(store, client_keys(store), MemoryConnection(TestCsms(in_memory=True)))
    worker = asyncio.create_task(client._call(AnswerWinsTheRace(), object()))
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(worker, 2)
    assert worker.cancelled()
    store.close()

# -- over a real socket on loopback ----------------------------------------------------

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


async def test_an_authorize_cut_by_a_closed_link_falls_back_to_offline_rules(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        await csms.drop_connections()
        assert client.online  # the client has not noticed the closed link yet
        # No answer (the station decides by its offline rules), not an exception.
        assert await client.authorize("04AABBCC") is None


@pytest.mark.timeout(20)
async def test_an_authorize_waiting_for_its_answer_ends_when_the_link_closes(tmp_path):
    # The call timeout is far beyond the test's: the answer is None because the link closed.
    async with TestCsms(CsmsBehaviour(swallow={"Authorize"}), in_memory=True) as csms, \
            memory_client(tmp_path, csms, call_timeout_s=600) as client:
        await wait_until(lambda: client.online)
        asking = asyncio.create_task(client.authorize("04AABBCC"))
        await csms.wait_for(lambda: csms.of("Authorize"))
        assert not asking.done()
        await csms.drop_connections()
        assert await asking is None


async def test_an_authorize_answered_with_a_callerror_is_no_answer(tmp_path):
    async with TestCsms(CsmsBehaviour(authorize_error=True), in_memory=True) as csms, \
            memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        assert await client.authorize("04AABBCC") is None
        assert client.online  # the link stays up
