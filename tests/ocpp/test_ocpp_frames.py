"""Frame hardening: every malformed backend CALL gets the right OCPP 1.6 CALLERROR, an
unparsable frame is answered with unique id "-1", nothing is answered while Rejected; the
verdicts of :func:`check_frame`, then the client answering over an in-memory link."""

from __future__ import annotations

import json
import logging

import pytest
from fakes import FakeStation, wait_until
from ocpp_support import memory_client
from ocpp_testcsms import CsmsBehaviour, TestCsms

from chargerfw.ocppj.frames import Answer, Ignore, Route, check_frame

pytestmark = pytest.mark.timeout(30)


BAD_FRAMES = [
    ("not json at all", "-1", "FormationViolation"),
    ('{"a": 1}', "-1", "FormationViolation"),
    ('[2, "b1", "Reset"]', "b1", "FormationViolation"),
    ('[2, "b2", "Reset", []]', "b2", "FormationViolation"),
    ('[7, "b3", "Reset", {}]', "b3", "FormationViolation"),
    # OCPP-J 1.6 table 7: an action 1.6 does not know is NotImplemented, one it knows that we
    # do not handle NotSupported.
    ('[2, "b4", "FlyToTheMoon", {}]', "b4", "NotImplemented"),
    ('[2, "b5", "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"}]',
     "b5", "NotSupported"),
    ('[2, "b5b", "BootNotification", {"chargePointVendor": "x", "chargePointModel": "y"}]',
     "b5b", "NotSupported"),
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
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=station) as client:
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


# The actions the 1.6 charge point has handlers for, as far as these frames need.
HANDLED = {"Reset", "ChangeConfiguration", "RemoteStartTransaction"}


@pytest.mark.parametrize("frame, reply_id, code", BAD_FRAMES)
def test_check_frame_answers_malformed_calls_and_unhandled_actions(frame, reply_id, code):
    verdict = check_frame(frame, HANDLED, answering=True, awaited_answers=())
    assert isinstance(verdict, Answer)
    assert (verdict.unique_id, verdict.error.code) == (reply_id, code)
    wire = json.loads(verdict.frame())
    assert wire[:3] == [4, reply_id, code] and len(wire) == 5 and wire[4]["cause"]


def test_check_frame_answer_on_the_wire():
    verdict = check_frame('[2, "b7", "Reset", {"type": 5}]', HANDLED, answering=True, awaited_answers=())
    assert isinstance(verdict, Answer)
    # Compact JSON, the code's standard description, the field and the schema's complaint.
    assert verdict.frame() == json.dumps(
        [4, "b7", "TypeConstraintViolation", verdict.error.description,
         {"cause": "type: 5 is not of type 'string'"}], separators=(",", ":"))
    assert verdict.error.description.startswith("Payload for Action is syntactically correct")


def test_unhandled_actions_get_the_codes_and_descriptions_of_the_16_error_table():
    unknown = check_frame('[2,"u1","FlyToTheMoon",{}]', HANDLED, answering=True, awaited_answers=())
    known = check_frame('[2,"u2","GetDiagnostics",{"location":"ftp://x"}]', HANDLED,
                        answering=True, awaited_answers=())
    assert isinstance(unknown, Answer) and isinstance(known, Answer)
    assert json.loads(unknown.frame())[:4] == [
        4, "u1", "NotImplemented", "Requested Action is not known by receiver"]
    assert json.loads(known.frame())[:4] == [
        4, "u2", "NotSupported", "Requested Action is recognized but not supported by the receiver"]


def test_check_frame_routes_well_formed_frames():
    verdict = check_frame('[2,"c1","Reset",{"type":"Soft"}]', HANDLED, answering=True, awaited_answers=())
    assert isinstance(verdict, Route) and verdict.call is not None
    assert (verdict.call.unique_id, verdict.call.action, verdict.call.payload) == (
        "c1", "Reset", {"type": "Soft"})
    # Answers to our CALLs go to the library as they are.
    assert check_frame('[3,"r1",{"currentTime":"x"}]', HANDLED, answering=True,
                       awaited_answers={"r1"}) == Route()
    assert check_frame('[4,"r2","InternalError","",{}]', HANDLED, answering=True,
                       awaited_answers={"r2"}) == Route()


def test_check_frame_drops_malformed_answers_and_everything_while_rejected():
    assert check_frame('[3]', HANDLED, answering=True, awaited_answers={"r2"}) == Ignore()
    assert check_frame('[4,"r2"]', HANDLED, answering=True, awaited_answers={"r2"}) == Ignore()
    assert check_frame('[2,"c1","Reset",{"type":"Soft"}]', HANDLED, answering=False, awaited_answers=()) == Ignore()
    # While Rejected a malformed CALL is still a malformed frame: answered.
    assert isinstance(check_frame('[2,"c2","Reset"]', HANDLED, answering=False, awaited_answers=()), Answer)


# -- hostile frames: an answer for each, never an internal error or a dropped link ----------

DEEP = "[" * 100_000 + "]" * 100_000
HOSTILE_CALLS = [
    # A lone surrogate is no Unicode text: no store, log or answer could carry it.
    ('[2,"h1","SendLocalList",{"listVersion":1,"updateType":"Full","localAuthorizationList":'
     '[{"idTag":"\\ud800","idTagInfo":{"status":"Accepted"}}]}]', "h1", "FormationViolation"),
    # OCPP 1.6 integers are 32-bit.
    ('[2,"h2","SendLocalList",{"listVersion":9223372036854775807,"updateType":"Full"}]', "h2",
     "TypeConstraintViolation"),
    ('[2,"h3","SendLocalList",{"listVersion":2147483648,"updateType":"Full"}]', "h3",
     "TypeConstraintViolation"),
    ('[2,"h4","RemoteStopTransaction",{"transactionId":-2147483649}]', "h4",
     "TypeConstraintViolation"),
    # Nested past any OCPP message: refused before anything recurses over it.
    (DEEP, "-1", "FormationViolation"),
    ('[2,"h5","DataTransfer",{"vendorId":"v","data":' + "[" * 30 + "]" * 30 + "}]", "h5",
     "FormationViolation"),
    ('[2,"h6","Reset",{"type":NaN}]', "-1", "FormationViolation"),
    # uniqueId: 1 to 36 characters; the refusal carries the id as sent.
    ('[2,"","Reset",{"type":"Soft"}]', "", "FormationViolation"),
    ('[2,"' + "u" * 37 + '","ClearCache",{}]', "u" * 37, "FormationViolation"),
    ('[2,"' + "s" * 10_000 + '","ChangeConfiguration",{"key":"HeartbeatInterval","value":"1"}]',
     "s" * 10_000, "FormationViolation"),
]


async def test_hostile_calls_get_the_right_call_error_and_change_nothing(tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="ocpp")  # the library's frame log decodes them too
    station = FakeStation()
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=station) as client:
        await wait_until(lambda: client.online)
        for frame, reply_id, code in HOSTILE_CALLS:
            reply = await csms.send_raw(frame, reply_id)
            assert reply[:3] == [4, reply_id, code], (frame[:80], reply)
        assert station.calls == []
        assert client.store.local_list_version() == 0 and client.store.local_list_size() == 0
        assert client.store.config_get("HeartbeatInterval") == "300"
        # The frame log kept the deep frame, cut short.
        logged = [r.frame for r in client.store.frame_log() if r.direction == "in"]
        assert any(f.startswith("[[[[") and f.endswith("(200000 characters)") for f in logged)
        reply = await csms.send_raw('[2,"ok","ClearCache",{}]', "ok")
        assert reply == [3, "ok", {"status": "Accepted"}]
        assert client.connection.health.connects == 1


MALFORMED_ANSWERS = [
    "[4]", '[4,"x"]', '[4,"x","GenericError"]', '[4,"x",5,"d",{}]', '[4,"x","c","d",[]]',
    '[4,"x","c","d",{},"extra"]', '[4.0,"x","GenericError","d",{}]', '[4,"","c","d",{}]',
    '[4,"' + "x" * 37 + '","c","d",{}]', '[4,"x","c","\\udfff",{}]',
    '[4,"x","c","d",' + "[" * 30 + "]" * 30 + "]", "[3]", '[3,"x"]', '[3,"x",[]]',
    '[3,"x",{},1]', '[3,5,{}]', '[3,"x",{"k":"\\ud800"}]',
]


async def test_malformed_answers_are_never_answered(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        before = len(csms.frames_in)
        for frame in MALFORMED_ANSWERS:
            await csms.connections[-1].send(frame)
        reply = await csms.send_raw('[2,"ok","ClearCache",{}]', "ok")
        assert reply == [3, "ok", {"status": "Accepted"}]
        # The one frame the charge point sent since is the answer to the CALL.
        assert csms.frames_in[before:] == ['[3,"ok",{"status":"Accepted"}]']
        assert client.connection.health.connects == 1


@pytest.mark.parametrize("frame", MALFORMED_ANSWERS)
def test_check_frame_ignores_every_malformed_answer(frame):
    assert check_frame(frame, HANDLED, answering=True, awaited_answers={"x"}) == Ignore()


def test_check_frame_routes_only_answers_to_outstanding_calls():
    assert check_frame('[3,"mine",{}]', HANDLED, True, awaited_answers={"mine"}) == Route()
    assert check_frame('[4,"mine","GenericError","",{}]', HANDLED, True,
                       awaited_answers={"mine"}) == Route()
    assert check_frame('[3,"stale",{}]', HANDLED, True, awaited_answers={"mine"}) == Ignore()


async def test_stale_answers_do_not_break_the_next_call(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        for i in range(1500):
            await csms.connections[-1].send(f'[3,"stale-{i}",{{"currentTime":"x"}}]')
        await csms.send_raw('[2,"ok","ClearCache",{}]', "ok")  # all of them were read
        assert await client.authorize("04AABBCC") == {"status": "Accepted"}
        assert client.connection.health.connects == 1


async def test_a_transaction_id_beyond_32_bits_is_a_refused_answer_not_a_reconnect_loop(tmp_path):
    csms = TestCsms(CsmsBehaviour(first_tx_id=2**64 + 1), in_memory=True)
    station = FakeStation()
    async with csms, memory_client(tmp_path, csms, station=station, keys_overrides={
            "TransactionMessageAttempts": "2", "TransactionMessageRetryInterval": "0"}) as client:
        await wait_until(lambda: client.online)
        tx = client.start_transaction(1, "04AABBCC", 1000)
        client.stop_transaction(1, 1100, "Local")
        await wait_until(lambda: client.store.outbox_head() is None)
        # Tried as often as TransactionMessageAttempts allows, then given up with its
        # transaction's later messages; the station never heard of an id.
        assert len(csms.of("StartTransaction")) == 2
        assert csms.of("StopTransaction") == []
        assert client.store.transaction(tx.local_id).backend_tx_id is None
        assert station.confirmed == []
        assert client.connection.health.connects == 1
        reply = await csms.send_raw('[2,"ok","ClearCache",{}]', "ok")
        assert reply == [3, "ok", {"status": "Accepted"}]
