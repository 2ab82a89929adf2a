"""A message a backend command causes goes out only after the answer to that command: the
StatusNotification after ReserveNow or RemoteStartTransaction, the StopTransaction after
RemoteStopTransaction, the message a TriggerMessage asks for. Asserted on the frame order a
backend sees over a real WebSocket on loopback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import ocpp.charge_point
import pytest
from fakes import FakeStation, wait_until
from ocpp.messages import MessageType
from ocpp_support import running_client
from ocpp_testcsms import TestCsms

pytestmark = pytest.mark.timeout(60)


class CausingStation(FakeStation):
    """Reports what a real station reports while it handles the command, before the answer."""

    client: Any = None

    def remote_start(self, id_tag: str, connector_id: int | None, authorize: bool) -> bool:
        self.client.set_status(connector_id or 1, "Preparing")
        return super().remote_start(id_tag, connector_id, authorize)

    def remote_stop(self, connector_id: int) -> bool:
        self.client.stop_transaction(connector_id, 1500, "Remote")
        return super().remote_stop(connector_id)

    def reserve_now(self, connector_id: int, expires_at: float, id_tag: str,
                    reservation_id: int, parent_id_tag: str | None) -> str:
        self.client.set_status(connector_id, "Reserved")
        self.calls.append(("reserve_now", connector_id, reservation_id))
        return "Accepted"


def answered_before(frames: list[str], reply_id: str, action: str) -> None:
    """The charge point's answer ``reply_id`` comes before its first ``action`` CALL after it
    was asked, and that CALL was sent at all."""
    messages = [json.loads(f) for f in frames]
    answer = next(i for i, m in enumerate(messages) if m[0] == 3 and m[1] == reply_id)
    caused = [i for i, m in enumerate(messages) if m[0] == 2 and m[2] == action]
    assert caused, f"no {action} was sent"
    assert all(i > answer for i in caused), [m[:3] for m in messages]


COMMANDS = {"RemoteStartTransaction", "RemoteStopTransaction", "ReserveNow", "TriggerMessage"}


@pytest.fixture
def slow_answer_validation(monkeypatch):
    """The library validates every answer it sends (in a worker thread) before it goes out; on
    a busy charge point that can take a while. Make the charge point's answers to commands take
    50 ms, so that a caused message overtakes the answer unless it waits for it."""
    validate = ocpp.charge_point.validate_payload

    async def slow(message: Any, ocpp_version: str) -> None:
        if message.message_type_id == MessageType.CallResult and message.action in COMMANDS:
            await asyncio.sleep(0.05)
        await validate(message, ocpp_version)

    monkeypatch.setattr(ocpp.charge_point, "validate_payload", slow)


async def test_caused_messages_follow_the_answer_to_their_command(tmp_path,
                                                                  slow_answer_validation):
    station = CausingStation()
    async with TestCsms() as csms, running_client(tmp_path, csms.url, station=station) as client:
        station.client = client
        client.set_status(1, "Available")
        await wait_until(lambda: client.online)
        await csms.wait_for(lambda: csms.of("StatusNotification"))

        cases = [
            ("rs", "RemoteStartTransaction", {"idTag": "04AA", "connectorId": 1},
             "StatusNotification"),
            ("rn", "ReserveNow", {"connectorId": 1, "expiryDate": "2099-01-01T00:00:00Z",
                                  "idTag": "04AA", "reservationId": 7}, "StatusNotification"),
            ("tm", "TriggerMessage", {"requestedMessage": "Heartbeat"}, "Heartbeat"),
        ]
        for reply_id, action, payload, caused in cases:
            before = len(csms.frames_in)
            reply = await csms.send_raw(json.dumps([2, reply_id, action, payload]), reply_id)
            assert reply[0] == 3 and reply[2]["status"] == "Accepted", reply
            await csms.wait_for(lambda before=before, caused=caused: any(
                json.loads(f)[0] == 2 and json.loads(f)[2] == caused
                for f in csms.frames_in[before:]))
            answered_before(csms.frames_in[before:], reply_id, caused)

        client.start_transaction(1, "04AA", 1000)
        await csms.wait_for(lambda: csms.of("StartTransaction"))
        await wait_until(lambda: client.store.outbox_head() is None)
        before = len(csms.frames_in)
        reply = await csms.send_raw('[2,"rx","RemoteStopTransaction",{"transactionId":1000}]',
                                    "rx")
        assert reply == [3, "rx", {"status": "Accepted"}]
        await csms.wait_for(lambda: csms.of("StopTransaction"))
        answered_before(csms.frames_in[before:], "rx", "StopTransaction")


async def test_a_connector_is_reported_available_only_after_its_queued_stop(tmp_path):
    """The stop of a session could not be delivered before the link went: after the reconnect
    (a new boot, every status again) the backend gets that StopTransaction before the
    connector's Available, which it would otherwise take for a forgotten session to close."""
    async with TestCsms() as csms, running_client(tmp_path, csms.url,
                                                  call_timeout_s=1.0) as client:
        client.set_status(1, "Charging")
        await wait_until(lambda: client.online)
        client.start_transaction(1, "04AA", 1000)
        await wait_until(lambda: client.store.outbox_head() is None)
        csms.behaviour.swallow.add("StopTransaction")  # the answer never comes ...
        client.stop_transaction(1, 1500, "EVDisconnected")
        client.set_status(1, "Available")
        await csms.wait_for(lambda: csms.of("StopTransaction"))
        csms.behaviour.swallow.clear()
        await csms.drop_connections()  # ... the link goes, and comes back
        await csms.wait_for(lambda: len(csms.of("BootNotification")) == 2)
        await csms.wait_for(lambda: any(
            r.action == "StatusNotification" and r.payload["status"] == "Available"
            for r in csms.received))
        await wait_until(lambda: client.store.outbox_head() is None)
        calls = [(r.action, r.payload.get("status")) for r in csms.received
                 if r.action in ("BootNotification", "StatusNotification", "StopTransaction")]
        second_boot = max(i for i, c in enumerate(calls) if c[0] == "BootNotification")
        after_reconnect = calls[second_boot:]
        assert after_reconnect.index(("StopTransaction", None)) < after_reconnect.index(
            ("StatusNotification", "Available")), after_reconnect
        assert ("StatusNotification", "Available") not in calls[:second_boot]
