"""UpdateFirmware reaching the station through the port, refused with a specific CALLERROR when
it cannot be taken, and FirmwareStatusNotification through the outbox, over an in-memory link."""

from __future__ import annotations

import json

import pytest
from fakes import FakeStation, wait_until
from ocpp_support import memory_client
from ocpp_testcsms import TestCsms

from chargerfw.station.firmware import FirmwareRequest, FirmwareState, FirmwareStatus

pytestmark = pytest.mark.timeout(30)


class FirmwareStation(FakeStation):
    def __init__(self, refuse: str | None = None) -> None:
        super().__init__()
        self.requests: list[FirmwareRequest] = []
        self.refuse = refuse

    def update_firmware(self, request: FirmwareRequest) -> str | None:
        if self.refuse is None:
            self.requests.append(request)
        return self.refuse

    def firmware_status(self) -> str:
        return "Downloading"


async def ask(csms, uid, payload):
    return await csms.send_raw(json.dumps([2, uid, "UpdateFirmware", payload]), uid)


async def test_update_firmware_reaches_the_station(tmp_path):
    station = FirmwareStation()
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=station) as client:
        await wait_until(lambda: client.online)
        reply = await ask(csms, "u1", {"location": "ftp://b/fw.tar", "retrieveDate": "2030-01-01T00:00:00Z",
                                       "retries": 4, "retryInterval": 15})
        assert reply == [3, "u1", {}]
        reply = await ask(csms, "u2", {"location": "http://b/fw.tar", "retrieveDate": "2030-01-01T00:00:00+01:00"})
        assert reply == [3, "u2", {}]
        assert station.requests == [
            FirmwareRequest("ftp://b/fw.tar", 1893456000.0, tries=4, retry_interval_s=15),
            FirmwareRequest("http://b/fw.tar", 1893452400.0)]  # the station's own defaults
        # TriggerMessage sends the status the station reports.
        trigger = [2, "t1", "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}]
        assert (await csms.send_raw(json.dumps(trigger), "t1"))[2] == {"status": "Accepted"}
        await csms.wait_for(lambda: csms.of("FirmwareStatusNotification"))
        assert csms.of("FirmwareStatusNotification")[0].payload == {"status": "Downloading"}


@pytest.mark.parametrize(("payload", "code", "cause"), [
    ({"location": "http://b/x", "retrieveDate": "tomorrow"}, "FormatViolation",
     "retrieveDate 'tomorrow' is not a date-time"),
    ({"location": "http://b/x", "retrieveDate": "2030-01-01T00:00:00"}, "FormatViolation",
     "retrieveDate has no time zone"),
    ({"location": "http://b/x", "retrieveDate": "2030-01-01T00:00:00Z", "retries": -1},
     "PropertyConstraintViolation", "retries and retryInterval must not be negative"),
    ({"location": "", "retrieveDate": "2030-01-01T00:00:00Z"}, "PropertyConstraintViolation",
     "a firmware location is required"),
])
async def test_a_bad_update_firmware_is_refused_and_changes_nothing(tmp_path, payload, code, cause):
    station = FirmwareStation()
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=station) as client:
        await wait_until(lambda: client.online)
        reply = await ask(csms, "u1", payload)
        assert (reply[0], reply[2]) == (4, code)
        if cause is not None:
            assert reply[4]["cause"] == cause
        assert station.requests == []


async def test_update_firmware_without_support_or_disabled(tmp_path):
    payload = {"location": "http://b/x", "retrieveDate": "2030-01-01T00:00:00Z"}
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=FakeStation()) as client:
        await wait_until(lambda: client.online)
        reply = await ask(csms, "u1", payload)
        assert reply[2] == "NotImplemented"
    station = FirmwareStation(refuse="unsigned UpdateFirmware is disabled on this station")
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path / "b", csms, station=station) as client:
        await wait_until(lambda: client.online)
        reply = await ask(csms, "u2", payload)
        assert reply[2] == "NotSupported"
        assert reply[4]["cause"] == "unsigned UpdateFirmware is disabled on this station"


async def test_firmware_status_notifications_go_through_the_outbox_in_order(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        client.store.firmware_save(FirmwareState(), [FirmwareStatus.DOWNLOADING,
                                                     FirmwareStatus.DOWNLOADED])
        client.outbox.wake()
        await csms.wait_for(lambda: len(csms.of("FirmwareStatusNotification")) == 2)
        assert [m.payload["status"] for m in csms.of("FirmwareStatusNotification")] == [
            "Downloading", "Downloaded"]
        await wait_until(lambda: not client.store.outbox_pending())


class SignedFirmwareStation(FirmwareStation):
    def __init__(self, answer: str) -> None:
        super().__init__()
        self.answer = answer

    def signed_update_firmware(self, request: FirmwareRequest) -> str:
        self.requests.append(request)
        return self.answer


SIGNED_PAYLOAD = {"requestId": 12, "retries": 2, "retryInterval": 5, "firmware": {
    "location": "https://b/fw.tar", "retrieveDateTime": "2030-01-01T00:00:00Z",
    "installDateTime": "2030-01-01T01:00:00+01:00",
    "signingCertificate": "-----BEGIN CERTIFICATE-----", "signature": "c2ln"}}


@pytest.mark.parametrize("answer", ["Accepted", "AcceptedCanceled", "InvalidCertificate",
                                    "Rejected"])
async def test_signed_update_firmware_reaches_the_station_with_its_answer(tmp_path, answer):
    station = SignedFirmwareStation(answer)
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=station) as client:
        await wait_until(lambda: client.online)
        reply = await csms.send_raw(json.dumps([2, "s1", "SignedUpdateFirmware", SIGNED_PAYLOAD]),
                                    "s1")
        assert reply == [3, "s1", {"status": answer}]
        assert station.requests == [FirmwareRequest(
            "https://b/fw.tar", 1893456000.0, tries=2, retry_interval_s=5, request_id=12,
            signature="c2ln", signing_certificate="-----BEGIN CERTIFICATE-----",
            install_at=1893456000.0)]


async def test_signed_update_firmware_without_support_is_not_implemented(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms, station=FakeStation()) as client:
        await wait_until(lambda: client.online)
        reply = await csms.send_raw(json.dumps([2, "s1", "SignedUpdateFirmware", SIGNED_PAYLOAD]),
                                    "s1")
        assert (reply[0], reply[2]) == (4, "NotImplemented")


async def test_signed_firmware_status_notifications_carry_the_request_id(tmp_path):
    from chargerfw.station.firmware import Notify

    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        client.store.firmware_save(FirmwareState(), [
            Notify(FirmwareStatus.DOWNLOADED, 9), Notify(FirmwareStatus.SIGNATURE_VERIFIED, 9),
            FirmwareStatus.IDLE])
        client.outbox.wake()
        await csms.wait_for(lambda: csms.of("FirmwareStatusNotification"))
        assert [m.payload for m in csms.of("SignedFirmwareStatusNotification")] == [
            {"status": "Downloaded", "requestId": 9},
            {"status": "SignatureVerified", "requestId": 9}]
        assert [m.payload for m in csms.of("FirmwareStatusNotification")] == [{"status": "Idle"}]
