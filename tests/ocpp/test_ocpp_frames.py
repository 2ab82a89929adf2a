"""Frame hardening: every malformed backend CALL gets the right OCPP 1.6 CALLERROR, an
unparsable frame is answered with unique id "-1", nothing is answered while Rejected; the
verdicts of :func:`check_frame`, then the client answering over an in-memory link."""

from __future__ import annotations

import json

import pytest
from fakes import FakeStation, wait_until
from ocpp_support import memory_client
from ocpp_testcsms import TestCsms

from chargerfw.ocpp.v16.frames import Answer, Ignore, Route, check_frame

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
    ('[2, "b5", "UpdateFirmware", {"location": "http://x", "retrieveDate": "2020-01-01T00:00:00Z"}]',
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
    verdict = check_frame(frame, HANDLED, answering=True)
    assert isinstance(verdict, Answer)
    assert (verdict.unique_id, verdict.error.code) == (reply_id, code)
    wire = json.loads(verdict.frame())
    assert wire[:3] == [4, reply_id, code] and len(wire) == 5 and wire[4]["cause"]


def test_check_frame_answer_on_the_wire():
    verdict = check_frame('[2, "b7", "Reset", {"type": 5}]', HANDLED, answering=True)
    assert isinstance(verdict, Answer)
    # Compact JSON, the code's standard description, the field and the schema's complaint.
    assert verdict.frame() == json.dumps(
        [4, "b7", "TypeConstraintViolation", verdict.error.description,
         {"cause": "type: 5 is not of type 'string'"}], separators=(",", ":"))
    assert verdict.error.description.startswith("Payload for Action is syntactically correct")


def test_unhandled_actions_get_the_codes_and_descriptions_of_the_16_error_table():
    unknown = check_frame('[2,"u1","FlyToTheMoon",{}]', HANDLED, answering=True)
    known = check_frame('[2,"u2","GetDiagnostics",{"location":"ftp://x"}]', HANDLED,
                        answering=True)
    assert isinstance(unknown, Answer) and isinstance(known, Answer)
    assert json.loads(unknown.frame())[:4] == [
        4, "u1", "NotImplemented", "Requested Action is not known by receiver"]
    assert json.loads(known.frame())[:4] == [
        4, "u2", "NotSupported", "Requested Action is recognized but not supported by the receiver"]


def test_check_frame_routes_well_formed_frames():
    verdict = check_frame('[2,"c1","Reset",{"type":"Soft"}]', HANDLED, answering=True)
    assert isinstance(verdict, Route) and verdict.call is not None
    assert (verdict.call.unique_id, verdict.call.action, verdict.call.payload) == (
        "c1", "Reset", {"type": "Soft"})
    # Answers to our CALLs go to the library as they are.
    assert check_frame('[3,"r1",{"currentTime":"x"}]', HANDLED, answering=True) == Route()
    assert check_frame('[4,"r2","InternalError","",{}]', HANDLED, answering=True) == Route()


def test_check_frame_drops_malformed_answers_and_everything_while_rejected():
    assert check_frame('[3]', HANDLED, answering=True) == Ignore()
    assert check_frame('[4,"r2"]', HANDLED, answering=True) == Ignore()
    assert check_frame('[2,"c1","Reset",{"type":"Soft"}]', HANDLED, answering=False) == Ignore()
    # While Rejected a malformed CALL is still a malformed frame: answered.
    assert isinstance(check_frame('[2,"c2","Reset"]', HANDLED, answering=False), Answer)
