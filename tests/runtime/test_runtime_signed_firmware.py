"""SignedUpdateFirmware through the simulated station's runtime against a test backend: the
signing certificate checked against the installed ManufacturerRootCertificates on arrival, the
signature over the downloaded file, SignedFirmwareStatusNotification with the requestId, the
security events, and what `allow_unsigned_update_firmware = false` leaves allowed.

The whole install of a signed release (and its boot as the new version) is
tests/release/test_release_signed_update_from_backend.py."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from cert_factory import CODE_SIGNING, Issued, issue, sign_firmware
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from firmware_servers import HttpFiles, http_server
from ocpp_testcsms import TestCsms
from runtime_helpers import sim_station_config

from chargerfw.config import FirmwareSection, StationConfig
from chargerfw.config.station import SecuritySection
from chargerfw.ocpp.security_log import (
    INVALID_FIRMWARE_SIGNATURE,
    INVALID_FIRMWARE_SIGNING_CERTIFICATE,
)
from chargerfw.release.manifest import public_key_pem
from chargerfw.runtime.station import StationRuntime
from chargerfw.sim.hardware import simulated_hardware
from chargerfw.station.firmware import FirmwareState, Phase
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(120)

ROOT = issue("Manufacturer Root", ca=True, organization="Test Manufacturer")
SIGNER = issue("Firmware Signing", issuer=ROOT, eku=[CODE_SIGNING])
IMPOSTOR = issue("Firmware Signing", issuer=issue("Someone Else's Root", ca=True),
                 eku=[CODE_SIGNING])
EXPIRED = issue("Old Firmware Signing", issuer=ROOT, eku=[CODE_SIGNING],
                not_before=datetime.now(UTC) - timedelta(days=400),
                not_after=datetime.now(UTC) - timedelta(days=1))
# Not a release: its signature may hold, the release's own checks refuse it.
FIRMWARE = b"not a chargerfw release\n" * 4096
PAST = "2020-01-01T00:00:00Z"


def station_config(tmp_path: Path, url: str, *, roots: tuple[Issued, ...] = (ROOT,),
                   **firmware: Any) -> StationConfig:
    _, config = sim_station_config(tmp_path, url)
    certificates = tmp_path / "certs"
    security = SecuritySection(certificates_dir=certificates)
    security.manufacturer_roots_dir.mkdir(parents=True)
    for number, root in enumerate(roots):
        (security.manufacturer_roots_dir / f"root{number}.pem").write_text(root.pem)
    pub = tmp_path / "release.pub"
    pub.write_bytes(public_key_pem(Ed25519PrivateKey.generate().public_key()))
    section = FirmwareSection(prefix=tmp_path / "opt", public_key=pub, **firmware)
    return msgspec.structs.replace(config, firmware=section, security=security)


@contextlib.asynccontextmanager
async def station(tmp_path: Path, **config: Any) -> AsyncIterator[tuple[TestCsms, HttpFiles,
                                                                         StationRuntime]]:
    with http_server({"/fw.tar": FIRMWARE}) as files:
        async with TestCsms() as csms:
            runtime_config = station_config(tmp_path, csms.url, **config)
            socket_dir = Path(tempfile.mkdtemp(prefix="cfw-", dir="/tmp"))
            runtime = StationRuntime(runtime_config, control_socket=socket_dir / "control.sock",
                                     shutdown_flush_s=3.0, simulator=simulated_hardware)
            task = asyncio.create_task(runtime.run())
            try:
                await csms.wait_for(lambda: csms.of("StatusNotification") or task.done(),
                                    timeout=60)
                assert not task.done()
                yield csms, files, runtime
            finally:
                runtime.request_stop()
                await asyncio.wait_for(task, 30)


async def signed_update(csms: TestCsms, files: HttpFiles, signer: Issued, *,
                        request_id: int = 41, signature: str | None = None,
                        retrieve: str = PAST) -> str:
    payload = {"requestId": request_id, "retries": 1, "retryInterval": 1, "firmware": {
        "location": f"{files.url}/fw.tar", "retrieveDateTime": retrieve,
        "signingCertificate": signer.pem,
        "signature": signature or sign_firmware(signer, FIRMWARE)}}
    uid = f"s{request_id}"
    reply = await csms.send_raw(json.dumps([2, uid, "SignedUpdateFirmware", payload]), uid)
    assert reply[0] == 3, reply
    return str(reply[2]["status"])


def signed_statuses(csms: TestCsms) -> list[tuple[str, int]]:
    return [(m.payload["status"], m.payload["requestId"])
            for m in csms.of("SignedFirmwareStatusNotification")]


def security_events(config: StationConfig) -> list[str]:
    with Store(config.storage.path) as store:
        return [event.type for event in store.security_events()]


async def test_a_valid_signature_is_verified_before_the_release_checks(tmp_path):
    async with station(tmp_path) as (csms, files, runtime):
        config = runtime.config
        assert await signed_update(csms, files, SIGNER) == "Accepted"
        await csms.wait_for(lambda: signed_statuses(csms)[-1:] == [("Idle", 41)], timeout=60)
        # The file is no release: refused by the release's own checks after the signature.
        assert signed_statuses(csms) == [
            ("Downloading", 41), ("Downloaded", 41), ("SignatureVerified", 41),
            ("InstallVerificationFailed", 41), ("Idle", 41)]
        assert csms.of("FirmwareStatusNotification") == []
        assert runtime.firmware.state == FirmwareState()
    assert not list(config.firmware_download_dir.iterdir())
    assert INVALID_FIRMWARE_SIGNATURE not in security_events(config)


async def test_a_bad_signature_is_invalid_signature_and_nothing_is_kept(tmp_path):
    async with station(tmp_path) as (csms, files, runtime):
        config = runtime.config
        # Signed by the right certificate's name, but not over this file.
        signature = sign_firmware(SIGNER, FIRMWARE + b"tampered")
        assert await signed_update(csms, files, SIGNER, signature=signature) == "Accepted"
        await csms.wait_for(lambda: signed_statuses(csms)[-1:] == [("Idle", 41)], timeout=60)
        assert signed_statuses(csms) == [("Downloading", 41), ("Downloaded", 41),
                                         ("InvalidSignature", 41), ("Idle", 41)]
    assert not list(config.firmware_download_dir.iterdir())
    assert not (config.firmware.prefix / "releases").exists()
    assert INVALID_FIRMWARE_SIGNATURE in security_events(config)


@pytest.mark.parametrize(("signer", "roots"), [
    pytest.param(IMPOSTOR, (ROOT,), id="unknown root"),
    pytest.param(EXPIRED, (ROOT,), id="expired signing certificate"),
    pytest.param(SIGNER, (), id="no roots installed"),
])
async def test_a_signing_certificate_that_does_not_hold_is_refused_on_arrival(
        tmp_path, signer, roots):
    async with station(tmp_path, roots=roots) as (csms, files, runtime):
        config = runtime.config
        assert await signed_update(csms, files, signer) == "InvalidCertificate"
        await asyncio.sleep(0.5)  # nothing may follow
        assert runtime.firmware.state == FirmwareState()
        assert signed_statuses(csms) == []
        assert files.ranges == []  # never downloaded
    assert security_events(config).count(INVALID_FIRMWARE_SIGNING_CERTIFICATE) == 1
    with Store(config.storage.path) as store:
        assert store.firmware_state() == FirmwareState()


async def test_unsigned_updates_disabled_leave_signed_ones_allowed(tmp_path):
    async with station(tmp_path, allow_unsigned_update_firmware=False) as (csms, files, runtime):
        unsigned = {"location": f"{files.url}/fw.tar", "retrieveDate": PAST}
        reply = await csms.send_raw(json.dumps([2, "u", "UpdateFirmware", unsigned]), "u")
        assert (reply[0], reply[2]) == (4, "NotSupported")
        assert runtime.firmware.state == FirmwareState()
        assert await signed_update(csms, files, SIGNER) == "Accepted"
        await csms.wait_for(lambda: signed_statuses(csms)[-1:] == [("Idle", 41)], timeout=60)
        assert ("SignatureVerified", 41) in signed_statuses(csms)


async def test_a_second_signed_update_cancels_the_scheduled_one_and_triggers_say_signed(
        tmp_path):
    async with station(tmp_path) as (csms, files, runtime):
        later = "2099-01-01T00:00:00Z"
        assert await signed_update(csms, files, SIGNER, request_id=1, retrieve=later) == \
            "Accepted"
        assert await signed_update(csms, files, SIGNER, request_id=2, retrieve=later) == \
            "AcceptedCanceled"
        await csms.wait_for(lambda: len(signed_statuses(csms)) == 2)
        assert signed_statuses(csms) == [("DownloadScheduled", 1), ("DownloadScheduled", 2)]
        assert runtime.firmware.state.phase is Phase.SCHEDULED
        assert runtime.firmware.state.signed_request_id == 2

        extended = [2, "x", "ExtendedTriggerMessage",
                    {"requestedMessage": "FirmwareStatusNotification"}]
        assert (await csms.send_raw(json.dumps(extended), "x"))[2] == {"status": "Accepted"}
        await csms.wait_for(lambda: len(signed_statuses(csms)) == 3)
        assert signed_statuses(csms)[-1] == ("DownloadScheduled", 2)
        # The 1.6 core trigger says it in FirmwareStatusNotification's words.
        plain = [2, "t", "TriggerMessage", {"requestedMessage": "FirmwareStatusNotification"}]
        assert (await csms.send_raw(json.dumps(plain), "t"))[2] == {"status": "Accepted"}
        await csms.wait_for(lambda: csms.of("FirmwareStatusNotification"))
        assert csms.of("FirmwareStatusNotification")[0].payload == {"status": "Idle"}
        assert files.ranges == []


async def test_a_bad_signed_update_is_a_call_error_naming_the_field(tmp_path):
    async with station(tmp_path) as (csms, files, runtime):
        payload = {"requestId": 5, "firmware": {
            "location": f"{files.url}/fw.tar", "retrieveDateTime": "2030-01-01T00:00:00",
            "signingCertificate": SIGNER.pem, "signature": "c2ln"}}
        reply = await csms.send_raw(json.dumps([2, "b", "SignedUpdateFirmware", payload]), "b")
        assert (reply[0], reply[2]) == (4, "FormatViolation")
        assert reply[4]["cause"] == "retrieveDateTime has no time zone"
        assert runtime.firmware.state == FirmwareState()
