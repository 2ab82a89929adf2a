"""GetDiagnostics and GetLog against a running station (in-process, simulated hardware, the
test CSMS over a real WebSocket with a password): the bundle is uploaded to a loopback HTTP
server or a real FTP server, opened here and searched for the station's secrets; the backend
gets exactly Uploading then Uploaded (or UploadFailed after the retries); TriggerMessage and
ExtendedTriggerMessage answer with the current state."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path
from typing import Any

import pytest
from fakes import wait_until
from ocpp_testcsms import TestCsms
from runtime_helpers import running_station, sim_station_config
from upload_servers import FtpUploadServer, HttpUploadServer

pytestmark = pytest.mark.timeout(60)

AUTHORIZATION_KEY = "0123456789abcdef0123456789abcdef"
CONFIG_PASSWORD = "config-file-secret-77"
PRIVATE_KEY_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDiagSecret"
BASIC_HEADER = "Q1AxOnN1cGVyLXNlY3JldC1oZWFkZXI="
SECRETS = (AUTHORIZATION_KEY, CONFIG_PASSWORD, PRIVATE_KEY_BODY, BASIC_HEADER)
JOURNAL = f"""\
2026-12-03T10:00:00+0000 pi chargerfw[7]: station.ready station=CP1
2026-12-03T10:00:01+0000 pi chargerfw[7]: http Authorization: Basic {BASIC_HEADER}
2026-12-03T10:00:02+0000 pi chargerfw[7]: config password={CONFIG_PASSWORD} key=AuthorizationKey value={AUTHORIZATION_KEY}
2026-12-03T10:00:03+0000 pi chargerfw[7]: -----BEGIN RSA PRIVATE KEY-----
{PRIVATE_KEY_BODY}
-----END RSA PRIVATE KEY-----
"""


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A journalctl that prints secrets and records the arguments it was called with."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (tmp_path / "journal.txt").write_text(JOURNAL)
    args = tmp_path / "journalctl-args.txt"
    fake = bin_dir / "journalctl"
    fake.write_text(f"#!/bin/sh\necho \"$*\" >> {args}\ncat {tmp_path / 'journal.txt'}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return args


def _members(archive: bytes) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode()  # type: ignore[union-attr]
                for m in tar.getmembers()}


def _statuses(csms: TestCsms, action: str) -> list[Any]:
    return [r.payload for r in csms.of(action)]


async def _ask(csms: TestCsms, uid: str, action: str, payload: dict[str, Any]) -> list[Any]:
    return await csms.send_raw(json.dumps([2, uid, action, payload]), uid)


def _station(tmp_path: Path, url: str) -> Any:
    _, config = sim_station_config(tmp_path, url, password=CONFIG_PASSWORD,
                                   keys={"AuthorizationKey": AUTHORIZATION_KEY})
    return config


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_get_diagnostics_uploads_a_redacted_bundle_over_http(
        tmp_path: Path, short_dir: Path, journal: Path) -> None:
    async with TestCsms(password=AUTHORIZATION_KEY) as csms:
        config = _station(tmp_path, csms.url)
        async with running_station(config, short_dir / "control.sock") as runtime:
            await wait_until(lambda: runtime.client.online)
            runtime.store.frame_log_add("in", '[2,"9","ChangeConfiguration",{"key":'
                                        f'"AuthorizationKey","value":"{AUTHORIZATION_KEY}"}}]')
            with HttpUploadServer() as server:
                reply = await _ask(csms, "d1", "GetDiagnostics", {
                    "location": server.url + "/diagnostics/CP1", "retries": 1,
                    "retryInterval": 1, "startTime": "2026-12-01T00:00:00Z"})
                file_name = reply[2]["fileName"]
                await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 2)
            assert _statuses(csms, "DiagnosticsStatusNotification") == [
                {"status": "Uploading"}, {"status": "Uploaded"}]
    assert file_name.startswith("CP1-diagnostics-") and file_name.endswith(".tar.gz")
    [upload] = server.received
    assert upload.method == "POST" and upload.file_name == file_name
    files = _members(upload.file or b"")
    assert set(files) >= {"config.json", "versions.json", "logs.txt", "status.json",
                          "faults.json", "ocpp-frames.json", "outbox.json", "transactions.json",
                          "ocpp-keys.json", "security-log.json", "window.json"}
    everything = "\n".join(files.values())
    for secret in SECRETS:
        assert secret not in everything, secret
    # The provisioned key was moved out of the store into its own file, blank in the store.
    assert json.loads(files["ocpp-keys.json"])["AuthorizationKey"] == ""
    assert json.loads(config.security.authorization_key_file.read_text())["key"] == AUTHORIZATION_KEY
    assert json.loads(files["config.json"])["ocpp"]["password"] == "***"
    assert json.loads(files["status.json"])["station"] == "CP1"
    assert json.loads(files["window.json"]) == {"since": "2026-12-01T00:00:00Z", "until": None}
    assert "station.ready station=CP1" in files["logs.txt"]  # the journal, redacted
    assert "--since @1796083200" in journal.read_text()  # startTime limits the journal
    events = [e["type"] for e in json.loads(files["security-log.json"])]
    assert "StartupOfTheDevice" in events


async def test_get_diagnostics_over_ftp_then_a_failing_location_retries_then_fails(
        tmp_path: Path, short_dir: Path, journal: Path) -> None:
    async with TestCsms(password=AUTHORIZATION_KEY) as csms:
        config = _station(tmp_path, csms.url)
        async with running_station(config, short_dir / "control.sock") as runtime:
            await wait_until(lambda: runtime.client.online)
            with FtpUploadServer(tmp_path / "ftp") as ftp:
                reply = await _ask(csms, "d1", "GetDiagnostics", {"location": ftp.url()})
                await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 2)
            stored = (tmp_path / "ftp" / reply[2]["fileName"]).read_bytes()
            assert "logs.txt" in _members(stored)
            for secret in SECRETS:
                assert secret.encode() not in stored
            # A server that keeps failing: 1 + retries attempts, then UploadFailed.
            with HttpUploadServer(statuses={"POST": [500, 500, 500, 500]}) as server:
                await _ask(csms, "d2", "GetDiagnostics", {
                    "location": server.url + "/x", "retries": 2, "retryInterval": 0})
                await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 4)
            assert len(server.received) == 3
            # Nothing listening at all: the same, without a server to count.
            await _ask(csms, "d3", "GetDiagnostics", {
                "location": f"http://127.0.0.1:{_closed_port()}/x", "retries": 1,
                "retryInterval": 0})
            await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 6)
            assert _statuses(csms, "DiagnosticsStatusNotification") == [
                {"status": "Uploading"}, {"status": "Uploaded"},
                {"status": "Uploading"}, {"status": "UploadFailed"},
                {"status": "Uploading"}, {"status": "UploadFailed"}]
            # Nothing runs now: a trigger reports Idle.
            reply = await _ask(csms, "t1", "TriggerMessage",
                               {"requestedMessage": "DiagnosticsStatusNotification"})
            assert reply[2] == {"status": "Accepted"}
            await csms.wait_for(lambda: len(csms.of("DiagnosticsStatusNotification")) == 7)
            assert _statuses(csms, "DiagnosticsStatusNotification")[-1] == {"status": "Idle"}


async def test_get_log_security_and_diagnostics_logs_and_extended_triggers(
        tmp_path: Path, short_dir: Path, journal: Path) -> None:
    async with TestCsms(password=AUTHORIZATION_KEY) as csms:
        config = _station(tmp_path, csms.url)
        async with running_station(config, short_dir / "control.sock") as runtime:
            await wait_until(lambda: runtime.client.online)
            with HttpUploadServer(statuses={"POST": [200, 403]}) as server:
                reply = await _ask(csms, "l1", "GetLog", {
                    "logType": "SecurityLog", "requestId": 41,
                    "log": {"remoteLocation": server.url + "/logs"}})
                assert reply[2]["status"] == "Accepted"
                assert reply[2]["filename"].startswith("CP1-security-log-")
                await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 2)
                reply = await _ask(csms, "l2", "GetLog", {
                    "logType": "DiagnosticsLog", "requestId": 42, "retries": 0,
                    "log": {"remoteLocation": server.url + "/logs",
                            "oldestTimestamp": "2026-12-01T00:00:00Z",
                            "latestTimestamp": "2026-12-02T00:00:00Z"}})
                assert reply[2]["status"] == "Accepted"
                await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 4)
            security_log = (server.received[0].file or b"").decode()
            assert "StartupOfTheDevice chargerfw" in security_log
            assert _statuses(csms, "LogStatusNotification") == [
                {"status": "Uploading", "requestId": 41}, {"status": "Uploaded", "requestId": 41},
                {"status": "Uploading", "requestId": 42},
                {"status": "PermissionDenied", "requestId": 42}]
            assert "--until @1796169601" in journal.read_text()
            # A location the station cannot upload to is refused up front.
            reply = await _ask(csms, "l3", "GetLog", {
                "logType": "SecurityLog", "requestId": 43,
                "log": {"remoteLocation": "sftp://host/logs"}})
            assert reply[2] == {"status": "Rejected"}

            async def trigger(uid: str, message: str) -> Any:
                return (await _ask(csms, uid, "ExtendedTriggerMessage",
                                   {"requestedMessage": message}))[2]

            assert await trigger("e1", "LogStatusNotification") == {"status": "Accepted"}
            await csms.wait_for(lambda: len(csms.of("LogStatusNotification")) == 5)
            assert _statuses(csms, "LogStatusNotification")[-1] == {"status": "Idle"}
            assert await trigger("e2", "FirmwareStatusNotification") == {"status": "Accepted"}
            await csms.wait_for(lambda: csms.of("FirmwareStatusNotification"))
            assert _statuses(csms, "FirmwareStatusNotification") == [{"status": "Idle"}]
            assert await trigger("e3", "SignChargePointCertificate") == {"status": "Accepted"}
            await csms.wait_for(lambda: csms.of("SignCertificate"))
            assert config.security.pending_charge_point_key.exists()
            heartbeats = len(csms.of("Heartbeat"))
            assert await trigger("e4", "Heartbeat") == {"status": "Accepted"}
            await csms.wait_for(lambda: len(csms.of("Heartbeat")) == heartbeats + 1)
            assert await trigger("e5", "BootNotification") == {"status": "Accepted"}
            await csms.wait_for(lambda: len(csms.of("BootNotification")) == 2)
            # Not a message ExtendedTriggerMessage knows (its schema refuses it).
            reply = await _ask(csms, "e6", "ExtendedTriggerMessage",
                               {"requestedMessage": "DiagnosticsStatusNotification"})
            assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation"
            # Malformed requests are CALLERRORs and start nothing.
            reply = await _ask(csms, "b1", "GetDiagnostics", {"location": server.url,
                                                               "startTime": "yesterday"})
            assert reply[0] == 4 and reply[2] == "PropertyConstraintViolation"
            reply = await _ask(csms, "b2", "GetDiagnostics", {"location": "sftp://x/y"})
            assert reply == [3, "b2", {}]
            assert len(csms.of("DiagnosticsStatusNotification")) == 0
