"""The typed control API: one request and one reply type per method, the params a request
takes (strictly typed, unknown ones refused with a message that names them), and the JSON
derived from the reply types."""

from __future__ import annotations

import dataclasses

import pytest
from diag_support import active_fault, status_result

from chargerfw.control.api import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    REQUEST_TYPES,
    BadReply,
    ControlError,
    FaultClearRequest,
    FaultsReply,
    FaultsRequest,
    MeterSampleReply,
    MeterSampleRequest,
    Method,
    Request,
    RfidNextReply,
    RfidNextRequest,
    SimChargeRequest,
    SimPlugRequest,
    SimTapRequest,
    StatusRequest,
    TransactionStatus,
    VehicleReply,
    decode_reply,
    decode_request,
    encode_reply,
    reply_type,
    request_params,
)
from chargerfw.drivers.types import MeterSample
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FaultKind


def test_every_method_has_its_request_and_reply_type() -> None:
    assert set(REQUEST_TYPES) == set(Method)
    for method, request_type in REQUEST_TYPES.items():
        assert request_type.method is method
        assert issubclass(request_type, Request)
        assert reply_type(request_type) is not None
    assert reply_type(SimPlugRequest) is VehicleReply
    assert reply_type(MeterSampleRequest) == MeterSampleReply | None


def test_params_decode_into_the_request_with_its_defaults() -> None:
    assert decode_request("status", {}) == StatusRequest()
    assert decode_request("faults", {"history": True}) == FaultsRequest(history=True, limit=100)
    assert decode_request("fault.clear", {"kind": "contactor_welded", "connector": 1}) == \
        FaultClearRequest(FaultKind.CONTACTOR_WELDED, 1)
    assert decode_request("fault.clear", {"kind": "rcd_trip_repeated"}) == \
        FaultClearRequest(FaultKind.RCD_TRIP_REPEATED, STATION)  # 0: the whole station
    assert decode_request("rfid.next", {"wait_s": 5}) == RfidNextRequest(5.0)  # int for a float
    assert decode_request("sim.charge", {}) == SimChargeRequest(1, None)
    assert decode_request("sim.tap", {"uid": "04A1"}) == SimTapRequest("04A1", 0.3)


@pytest.mark.parametrize(("method", "params", "named"), [
    ("status", {"verbose": True}, "verbose: unknown key"),
    ("fault.clear", {"kind": "gremlins"}, "kind: Expected one of 'rcd_trip'"),
    ("fault.clear", {}, "kind: required key is missing"),
    ("sim.plug", {"connector": True}, "connector: Expected `int`, got `bool`"),
    ("sim.plug", {"connector": "1"}, "connector: Expected `int`, got `str`"),
    ("meter.sample", {"connector": 1.5}, "connector: Expected `int`, got `float`"),
    ("config.set", {"key": "HeartbeatInterval", "value": 60}, "value: Expected `str`, got `int`"),
    ("faults", {"limit": "10"}, "limit: Expected `int`, got `str`"),
])
def test_bad_params_are_refused_naming_them(method: str, params: dict, named: str) -> None:
    with pytest.raises(ControlError) as refused:
        decode_request(method, params)
    assert refused.value.code == INVALID_PARAMS
    assert refused.value.message.startswith(f"{method}: ") and named in refused.value.message


def test_an_unknown_method_is_not_found() -> None:
    with pytest.raises(ControlError) as unknown:
        decode_request("no.such.method", {})
    assert unknown.value.code == METHOD_NOT_FOUND and unknown.value.method_missing


def test_request_params_are_the_json_the_server_decodes() -> None:
    request = FaultClearRequest(FaultKind.CONTACTOR_WELDED, 1)
    assert request_params(request) == {"kind": "contactor_welded", "connector": 1}
    assert decode_request(request.method, request_params(request)) == request


def test_replies_round_trip_through_their_json() -> None:
    status = status_result(
        pilot="C", faults=[active_fault(FaultKind.METER_FAILURE, 1)],
        transaction=TransactionStatus(3, None, "04A1B2C3", 1.0, 100, 2.5))
    wire = encode_reply(StatusRequest, status)
    assert wire["connectors"][0]["pilot"] == "C" and wire["connectors"][0]["status"] == "Charging"
    assert wire["faults"][0]["kind"] == "meter_failure" and wire["faults"][0]["clears"] == \
        "condition_gone"
    assert wire["connectors"][0]["transaction"]["transaction_id"] is None  # kept when None
    assert decode_reply(StatusRequest, wire) == status


def test_optional_fields_are_left_out_while_none() -> None:
    assert encode_reply(FaultsRequest, FaultsReply([])) == {"active": []}
    assert encode_reply(FaultsRequest, FaultsReply([], []))["history"] == []
    assert encode_reply(RfidNextRequest, RfidNextReply(None, "sim")) == {
        "id_tag": None, "reader": "sim"}
    assert encode_reply(RfidNextRequest, RfidNextReply("04AA55", "sim", "04AA55", 1.0)) == {
        "id_tag": "04AA55", "reader": "sim", "uid": "04AA55", "at": 1.0}


def test_a_meter_sample_reply_is_the_sample_and_its_age() -> None:
    sample = MeterSample(1.0, 5000.0, voltage_l1_v=230.0)
    reply = MeterSampleReply(**dataclasses.asdict(sample), age_s=0.4)
    wire = encode_reply(MeterSampleRequest, reply)
    assert wire["age_s"] == 0.4 and wire["energy_import_wh"] == 5000.0
    assert decode_reply(MeterSampleRequest, wire).sample() == sample
    assert encode_reply(MeterSampleRequest, None) is None
    assert decode_reply(MeterSampleRequest, None) is None


def test_a_result_that_is_not_the_reply_is_a_bad_reply() -> None:
    with pytest.raises(BadReply) as bad:
        decode_reply(SimPlugRequest, {"connector": "one"})
    assert "the service answered sim.plug with" in bad.value.message
    assert "vehicle: required key is missing" in bad.value.message
