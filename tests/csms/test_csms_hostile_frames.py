"""Hostile and absurd OCPP frames against the backend: every CALL gets exactly one answer with
an OCPP 1.6 error code (never InternalError), the connection stays open, one log line per bad
frame and no traceback; schema-valid but absurd values get their defined outcome
(chargerfw.csms.ocpp_values); a refused handshake registers no charger."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from csms_doubles import add_test_charger, csms_running, served_in_thread
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import connect as sync_connect

from chargerfw.csms.ocpi.models import Token
from chargerfw.logs import capture_logs

pytestmark = pytest.mark.timeout(120)

PASSWORD = "hostile-test-pw"
HEADERS = {"Authorization": "Basic " + base64.b64encode(f"CP1:{PASSWORD}".encode()).decode()}
OCPP16_ERRORS = {"NotImplemented", "NotSupported", "ProtocolError", "SecurityError",
                 "FormationViolation", "PropertyConstraintViolation",
                 "OccurenceConstraintViolation", "TypeConstraintViolation"}
NOW = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@contextlib.asynccontextmanager
async def charger(url: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"{url}/CP1", subprotocols=["ocpp1.6"],
                       additional_headers=HEADERS) as ws:
        yield ws


async def ask(ws: ClientConnection, frame: str) -> Any:
    await ws.send(frame)
    return json.loads(await asyncio.wait_for(ws.recv(), 10))


# (frame, unique id of the answer, error code)
BAD_FRAMES = [
    ("not json at all", "-1", "FormationViolation"),
    ('[2, "n1", "Heartbeat", {"x": NaN}]', "-1", "FormationViolation"),
    ('[2, "n2", {"action": "Heartbeat"}, {}]', "n2", "FormationViolation"),
    ('[2, "n3", "Authorize", {"idTag": "\\ud800"}]', "n3", "FormationViolation"),
    ("[" * 100_000 + "]" * 100_000, "-1", "FormationViolation"),
    ('[2, "n4", "MeterValues", {"connectorId": 9223372036854775808, "meterValue": [{'
     f'"timestamp": "{NOW}", "sampledValue": [{{"value": "1"}}]}}]}}]', "n4",
     "TypeConstraintViolation"),
    ('[2, "n5", "MeterValues", {"connectorId": ' + "9" * 5000 + ', "meterValue": []}]', "-1",
     "FormationViolation"),
    ('[2, "n6", "FlyToTheMoon", {}]', "n6", "NotImplemented"),
    ('[2, "n7", "Heartbeat"]', "n7", "FormationViolation"),
    ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "x" * 37, "FormationViolation"),
    ('[2, "n8", "StatusNotification", {"connectorId": -1, "errorCode": "NoError", '
     '"status": "Available"}]', "n8", "PropertyConstraintViolation"),
    ('[2, "n9", "StartTransaction", {"connectorId": 0, "idTag": "T", "meterStart": 0, '
     f'"timestamp": "{NOW}"}}]', "n9", "PropertyConstraintViolation"),
]


async def test_each_bad_frame_gets_its_error_and_the_link_stays(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", PASSWORD)
        with capture_logs() as logged:
            async with charger(csms.ocpp_url) as ws:
                for frame, unique_id, code in BAD_FRAMES:
                    answer = await ask(ws, frame)
                    assert answer[:3] == [4, unique_id, code], (frame[:80], answer)
                # Answers to nothing are dropped, not answered.
                await ws.send('[3, "nobody-asked", {}]')
                await ws.send('[4, "nobody-asked", "GenericError", "", {}]')
                assert (await ask(ws, '[2, "ok", "Heartbeat", {}]'))[:2] == [3, "ok"]
        # One line per bad frame: the frame check's, or (a value a handler refuses) the OCPP
        # library's, as a warning without a traceback.
        bad = [e for e in logged if e["event"] == "csms.bad_frame"]
        refused_by_handlers = [r for r in caplog.records if r.name == "ocpp"]
        assert len(bad) + len(refused_by_handlers) == len(BAD_FRAMES)
        assert len(refused_by_handlers) == 2
        assert all(r.levelno == logging.WARNING and not r.exc_info for r in refused_by_handlers)
        assert not [e for e in logged if e["log_level"] in ("error", "critical")]
        assert await csms.db(csms.store.connector_statuses, "CP1") == {}


async def test_absurd_values_get_their_defined_outcome(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", PASSWORD)
        await csms.db(csms.store.put_token, Token.model_validate({
            "country_code": "DE", "party_id": "EMS", "uid": "TAG1", "type": "RFID",
            "contract_id": "DE-EMS-C1", "issuer": "Test eMSP", "valid": True,
            "whitelist": "ALWAYS", "last_updated": NOW}), None)
        async with charger(csms.ocpp_url) as ws:
            # Year 0001 is the charger's clock: the receive time is used.
            start = await ask(ws, json.dumps([2, "s", "StartTransaction", {
                "connectorId": 1, "idTag": "TAG1", "meterStart": 5000,
                "timestamp": "0001-01-01T00:00:00Z"}]))
            assert start[2]["idTagInfo"]["status"] == "Accepted", start
            tx_id = start[2]["transactionId"]
            tx = await csms.db(csms.store.get_transaction, tx_id)
            assert abs(tx["start_time"] - datetime.now(UTC)) < timedelta(minutes=1)
            # Readings no meter gives are dropped; the rest counts.
            answer = await ask(ws, json.dumps([2, "m", "MeterValues", {
                "connectorId": 1, "transactionId": tx_id, "meterValue": [{
                    "timestamp": NOW, "sampledValue": [
                        {"value": "Infinity", "measurand": "Current.Import", "phase": "L1"},
                        {"value": "-1e300", "measurand": "Power.Active.Import"},
                        {"value": "5400", "measurand": "Energy.Active.Import.Register"}]}]}]))
            assert answer[:2] == [3, "m"]
            tx = await csms.db(csms.store.get_transaction, tx_id)
            assert tx["meter_last"] == 5400
            # A meterStop below meterStart counts no energy, and the CDR says why.
            stop = await ask(ws, json.dumps([2, "t", "StopTransaction", {
                "transactionId": tx_id, "meterStop": 10, "timestamp": NOW}]))
            assert stop[:2] == [3, "t"]
            tx = await csms.db(csms.store.get_transaction, tx_id)
            assert tx["meter_stop"] == 5400 and "below meterStart" in tx["remark"]
            assert tx["stop_reason"] == "Local"


async def test_a_refused_handshake_registers_no_charger(tmp_path: Path) -> None:
    async with csms_running(str(tmp_path / "c.db"), auto_register=True) as csms:
        for path in ("%zz", "a%2Fb", "sp%20ace", "%C3%28"):
            with pytest.raises(InvalidStatus):
                async with connect(f"{csms.ocpp_url}/{path}", subprotocols=["ocpp1.6"]):
                    pass
        # No common subprotocol: refused after the request, still nothing registered.
        with pytest.raises(InvalidHandshake):
            async with connect(f"{csms.ocpp_url}/NEW1", subprotocols=["ocpp2.0.1"]):
                pass
        assert await csms.db(csms.store.list_charge_points) == []
        async with connect(f"{csms.ocpp_url}/NEW2", subprotocols=["ocpp1.6"]) as ws:
            assert (await ask(ws, '[2, "h", "Heartbeat", {}]'))[:2] == [3, "h"]
        assert [c["id"] for c in await csms.db(csms.store.list_charge_points)] == ["NEW2"]


@dataclass
class LiveBackend:
    url: str


@pytest.fixture(scope="module")
def live_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBackend]:
    @contextlib.asynccontextmanager
    async def serving() -> AsyncIterator[LiveBackend]:
        db = str(tmp_path_factory.mktemp("fuzz") / "csms.sqlite3")
        async with csms_running(db) as csms:
            await csms.db(add_test_charger, csms.store, "CP1", PASSWORD)
            yield LiveBackend(csms.ocpp_url)

    with served_in_thread(serving) as backend:
        yield backend


JSON_LEAF = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
             | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30))
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                          max_leaves=12)
ACTIONS = st.sampled_from(["BootNotification", "Heartbeat", "StatusNotification", "Authorize",
                           "StartTransaction", "StopTransaction", "MeterValues",
                           "DataTransfer", "FirmwareStatusNotification", "Nope"])


@st.composite
def hostile_calls(draw: st.DrawFn) -> tuple[str, str]:
    unique_id = draw(st.text(min_size=1, max_size=36).filter(str.isprintable))
    payload = draw(st.dictionaries(st.sampled_from(
        ["connectorId", "idTag", "meterStart", "meterStop", "timestamp", "transactionId",
         "status", "errorCode", "meterValue", "vendorId", "chargePointVendor",
         "chargePointModel", "reason"]), JSON_VALUE, max_size=6))
    action: Any = draw(ACTIONS | JSON_VALUE)
    return unique_id, json.dumps([2, unique_id, action, payload])


def test_generated_hostile_calls_are_each_answered_with_an_ocpp_error_or_a_result(
        live_backend: LiveBackend, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with sync_connect(f"{live_backend.url}/CP1", subprotocols=["ocpp1.6"],
                      additional_headers=HEADERS) as ws:

        @settings(max_examples=300, derandomize=True, database=None, deadline=None,
                  phases=[Phase.generate], suppress_health_check=list(HealthCheck))
        @given(call=hostile_calls())
        def property_(call: tuple[str, str]) -> None:
            unique_id, frame = call
            ws.send(frame)
            answer = json.loads(ws.recv(timeout=10))
            assert answer[1] in (unique_id, "-1"), (frame, answer)
            assert answer[0] in (3, 4), answer
            if answer[0] == 4:
                assert answer[2] in OCPP16_ERRORS, (frame, answer)

        property_()
        ws.send('[2, "last", "Heartbeat", {}]')
        assert json.loads(ws.recv(timeout=10))[:2] == [3, "last"]
    assert "Traceback" not in caplog.text
