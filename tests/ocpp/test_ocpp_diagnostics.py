"""GetDiagnostics / GetLog while an upload runs: the trigger answers Uploading, a second GetLog
cancels the first (AcceptedCanceled), and a bundle that cannot be built is reported as failed.
Over an in-memory link, with a log source the test controls."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fakes import wait_until
from ocpp_support import memory_client, running_client
from ocpp_testcsms import TestCsms
from upload_servers import HttpUploadServer

from chargerfw.ocpp.credentials import AuthorizationKeyFile
from chargerfw.ocpp.security_profile import authorization_key_applier

pytestmark = pytest.mark.timeout(30)


class HeldSource:
    """Writes its files only once released; fails when told to."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.fail = False
        self.calls: list[tuple[str, float | None, float | None]] = []

    def _write(self, kind: str, path: Path, since: float | None, until: float | None) -> None:
        self.calls.append((kind, since, until))
        if not self.release.wait(10):
            raise TimeoutError("never released")
        if self.fail:
            raise OSError("disk full")
        path.write_text(f"{kind} file")

    def write_diagnostics(self, path: Path, since: float | None, until: float | None) -> None:
        self._write("diagnostics", path, since, until)

    def write_security_log(self, path: Path, since: float | None, until: float | None) -> None:
        self._write("security", path, since, until)


async def _ask(csms: TestCsms, uid: str, action: str, payload: dict[str, Any]) -> Any:
    return (await csms.send_raw(json.dumps([2, uid, action, payload]), uid))[2]


def _statuses(csms: TestCsms, action: str) -> list[Any]:
    return [r.payload for r in csms.of(action)]


async def test_state_while_uploading_and_a_replaced_log_upload(tmp_path):
    source = HeldSource()
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        client.attach_logs(source)
        await wait_until(lambda: client.online)
        with HttpUploadServer() as server:
            first = await _ask(csms, "l1", "GetLog", {
                "logType": "SecurityLog", "requestId": 1,
                "log": {"remoteLocation": server.url,
                        "oldestTimestamp": "2026-01-01T00:00:00+01:00"}})
            assert first["status"] == "Accepted"
            await wait_until(lambda: source.calls)
            assert source.calls == [("security", 1767222000.0, None)]
            assert await _ask(csms, "t1", "ExtendedTriggerMessage",
                              {"requestedMessage": "LogStatusNotification"}) == {"status": "Accepted"}
            await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 2)
            second = await _ask(csms, "l2", "GetLog", {
                "logType": "DiagnosticsLog", "requestId": 2, "log": {"remoteLocation": server.url}})
            assert second["status"] == "AcceptedCanceled"
            await wait_until(lambda: len(source.calls) == 2)
            source.release.set()
            await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 4)
            await _ask(csms, "d1", "GetDiagnostics", {"location": server.url})
            await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 2)
        assert _statuses(csms, "LogStatusNotification") == [
            {"status": "Uploading", "requestId": 1},
            {"status": "Uploading", "requestId": 1},  # the trigger, while it ran
            {"status": "Uploading", "requestId": 2}, {"status": "Uploaded", "requestId": 2}]
        assert [r.file for r in server.received] == [b"diagnostics file", b"diagnostics file"]


async def test_a_bundle_that_cannot_be_built_is_a_failed_upload(tmp_path):
    source = HeldSource()
    source.fail = True
    source.release.set()
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        # Without a source nothing can be uploaded.
        assert await _ask(csms, "d0", "GetDiagnostics", {"location": "http://127.0.0.1:9/x"}) == {}
        client.attach_logs(source)
        reply = await _ask(csms, "d1", "GetDiagnostics", {"location": "http://127.0.0.1:9/x"})
        assert reply["fileName"].startswith("CP1-diagnostics-")
        await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 2)
        reply = await _ask(csms, "l1", "GetLog", {
            "logType": "SecurityLog", "requestId": 5, "log": {"remoteLocation": "ftp://127.0.0.1:9/"}})
        await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 2)
    assert _statuses(csms, "DiagnosticsStatusNotification") == [
        {"status": "Uploading"}, {"status": "UploadFailed"}]
    assert _statuses(csms, "LogStatusNotification") == [
        {"status": "Uploading", "requestId": 5}, {"status": "UploadFailure", "requestId": 5}]


async def test_security_events_for_refused_credentials_and_a_new_authorization_key(tmp_path):
    async with TestCsms(password="0011223344556677") as csms:
        async with running_client(tmp_path, csms.url, password="wrong-password-1",
                                  profile=1) as client:
            await wait_until(lambda: client.store.security_events(), timeout=10)
            refused = client.store.security_events()[0]
            assert refused.type == "FailedToAuthenticateAtCentralSystem"
            assert "HTTP 401" in (refused.tech_info or "")
            assert "wrong-password-1" not in (refused.tech_info or "")
            assert not client.online
            client.keys.set_applier("AuthorizationKey", authorization_key_applier(
                AuthorizationKeyFile(tmp_path / "authorization_key.json")))
            client.keys.change("AuthorizationKey", "0011223344556677")
            assert "ReconfigurationOfSecurityParameters" in [
                e.type for e in client.store.security_events()]
