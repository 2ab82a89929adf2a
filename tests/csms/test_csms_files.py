"""The backend's files: chargers' firmware/diagnostics/log statuses stored and shown, firmware
releases published and downloaded through one-time URLs (resuming with Range), diagnostics
and logs uploaded (PUT and multipart POST), and every refusal of a foreign, used, expired or
oversized request."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import tarfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from csms_doubles import add_test_charger, csms_running, sim_charger
from fakes import wait_until
from ocpp.v16 import call

from chargerfw.cli import main
from chargerfw.csms.operator_commands import InvalidCommand, check_params
from chargerfw.csms.server import RunningCsms

pytestmark = pytest.mark.timeout(120)


def _csms(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    # The backend in this process logs to the same stdout.
    return result.exit_code, "".join(line for line in result.output.splitlines(keepends=True)
                                     if not line.startswith("level="))


async def csms_cli(*args: str) -> tuple[int, str]:
    return await asyncio.to_thread(_csms, *args)


def make_release(path: Path, version: str, payload: bytes) -> bytes:
    """A release-shaped tar (manifest.json and one wheel); returns its bytes."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in (("manifest.json", json.dumps({"version": version}).encode()),
                           ("wheels/chargerfw-0-py3-none-any.whl", payload)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def files_url(csms: RunningCsms) -> str:
    assert csms.files is not None
    return csms.files.settings.base_url


@pytest.mark.parametrize(("command", "params", "error"), [
    ("firmware_update", {}, "either a published release's version or a URL"),
    ("firmware_update", {"version": "1.0", "url": "http://x/y"}, "either"),
    ("firmware_update", {"url": "file:///etc/passwd"}, "url must be an http/https/ftp/ftps"),
    ("firmware_update", {"version": "1.0", "retries": -1}, "retries must be a whole number"),
    ("firmware_update", {"version": "1.0", "retrieve_date": "2027-01-01T00:00:00"},
     "retrieve_date must be an ISO 8601 time with its UTC offset"),
    ("diagnostics", {"start": "2027-01-02T00:00:00Z", "stop": "2027-01-01T00:00:00Z"},
     "must be before stop"),
    ("get_log", {"log_type": "KernelLog"}, "log_type must be one of DiagnosticsLog"),
])
def test_bad_arguments_are_refused(command: str, params: dict[str, Any], error: str) -> None:
    with pytest.raises(InvalidCommand, match=error):
        check_params(command, params)


async def test_statuses_are_stored_with_a_short_history_and_shown(db: str) -> None:
    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            for status in ["Downloading"] * 21 + ["Downloaded"]:
                await charger.call(call.FirmwareStatusNotification(status=status))
            await charger.call(call.SignedFirmwareStatusNotification(
                status="InvalidSignature", request_id=7))
            await charger.call(call.DiagnosticsStatusNotification(status="Uploading"))
            await charger.call(call.LogStatusNotification(status="Uploaded", request_id=9))
        firmware = await csms.db(csms.store.file_statuses, "CP1", "firmware")
        assert [row["status"] for row in firmware] == ["Downloading"] * 19 + ["Downloaded"]
        code, out = await csms_cli("cp", "show", "CP1", "--db", db, "--json")
        shown = json.loads(out)["file_statuses"]
        assert code == 0
        # The latest firmware status, signed or not: the signed notification came last.
        latest = json.loads(out)["firmware_status"]
        assert (latest["status"], latest["signed"], latest["request_id"]) == (
            "InvalidSignature", True, 7)
        assert [s["status"] for s in shown["firmware"]][-2:] == ["Downloading", "Downloaded"]
        assert [(s["status"], s["request_id"]) for s in shown["signed_firmware"]] == [
            ("InvalidSignature", 7)]
        assert [s["status"] for s in shown["diagnostics"]] == ["Uploading"]
        assert [(s["status"], s["request_id"]) for s in shown["log"]] == [("Uploaded", 9)]
        code, out = await csms_cli("cp", "show", "CP1", "--db", db)
        assert code == 0
        assert "firmware: Downloaded at" in out
        assert "signed firmware: InvalidSignature (request 7)" in out
        assert "log: Uploaded (request 9)" in out
        code, out = await csms_cli("cp", "show", "NOPE", "--db", db)
        assert code == 2 and "unknown charge point 'NOPE'" in out


async def test_a_published_release_is_downloaded_once_resuming_with_range(
        db: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "files"
    release = tmp_path / "chargerfw-1.2.3-release.tar"
    # Larger than the loopback's socket buffers: the cut download cannot have been sent whole.
    content = make_release(release, "1.2.3", bytes(range(256)) * 128 * 1024)
    code, out = await csms_cli("firmware", "publish", str(release), "--db", db,
                               "--data-dir", str(data_dir))
    assert code == 0 and out.startswith("published 1.2.3 as chargerfw-1.2.3-release.tar")
    code, out = await csms_cli("firmware", "list", "--db", db, "--json")
    [listed] = json.loads(out)
    assert (listed["version"], listed["sha256"], listed["size"]) == (
        "1.2.3", hashlib.sha256(content).hexdigest(), len(content))
    code, out = await csms_cli("firmware", "publish", str(release), "--db", db,
                               "--data-dir", str(data_dir))
    assert code == 2 and "release 1.2.3 is published already" in out

    async with csms_running(db, data_dir=str(data_dir), operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            charger.fetch_firmware = True
            charger.cut_download_at = 1000
            code, out = await csms_cli("cp", "firmware", "update", "CP1", "1.2.3",
                                       "--retries", "2", "--retry-interval", "30",
                                       "--follow", "--follow-timeout", "30", "--db", db)
            assert code == 0, out
            lines = out.splitlines()
            assert lines[0] == "CP1: Accepted: the charger will download the firmware"
            assert [line.split()[1] for line in lines[1:]] == [
                "Downloading", "Downloaded", "Installing", "Installed"]
            assert charger.downloaded == content
            assert charger.http_statuses == [200, 206]
            [(_, sent)] = [r for r in charger.received if r[0] == "UpdateFirmware"]
            assert sent["location"].startswith(f"{files_url(csms)}/firmware/")
            assert sent["location"].endswith("/chargerfw-1.2.3-release.tar")
            assert (sent["retries"], sent["retry_interval"]) == (2, 30)
            # Used up by the complete download: nothing more is served.
            async with httpx.AsyncClient() as http:
                again = await http.get(sent["location"])
            assert again.status_code == 404 and again.content == b"no such file\n"
        code, out = await csms_cli("cp", "show", "CP1", "--db", db)
        assert "firmware: Installed at" in out


async def token_used_up(csms: RunningCsms, token: str) -> bool:
    """Whether a firmware token is used up (recorded just after its download was sent
    whole, so a request right behind it may still find it usable)."""
    from chargerfw.csms.store.charger_files import TokenRefused

    try:
        await csms.db(csms.store.usable_file_token, token, ("firmware",))
    except TokenRefused:
        return True
    return False


async def test_refused_downloads_serve_nothing_and_change_nothing(db: str,
                                                                  tmp_path: Path) -> None:
    data_dir = tmp_path / "files"
    async with csms_running(db, data_dir=str(data_dir)) as csms:
        assert csms.files is not None
        await csms.db(add_test_charger, csms.store, "CP1", None)
        await csms.db(add_test_charger, csms.store, "CP2", None, location_id="LOC2")
        from chargerfw.csms.file_server import publish_release

        content = make_release(tmp_path / "r.tar", "2.0", b"x" * 5000)
        await asyncio.to_thread(publish_release, csms.store, data_dir, tmp_path / "r.tar")
        async with sim_charger(csms, "CP1"):
            issued, url = await csms.files.issue("CP1", "firmware", "2.0")
            expired = await csms.db(csms.store.issue_file_token, "CP1", "firmware",
                                    timedelta(seconds=-1), "2.0")
            upload, upload_url = await csms.files.issue("CP1", "diagnostics")
            # CP2 never connected: nobody may fetch its URL.
            _, cp2_url = await csms.files.issue("CP2", "firmware", "2.0")
            elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
            async with httpx.AsyncClient(transport=elsewhere) as stranger:
                response = await stranger.get(url)
            assert (response.status_code, response.content) == (
                403, b"this URL belongs to another charger\n")
            base = url.rsplit("/", 2)[0]
            async with httpx.AsyncClient() as http:
                refusals = [await http.get(f"{base}/{expired.token}/chargerfw-2.0-release.tar"),
                            await http.get(url.rsplit("/", 1)[0] + "/other.tar"),
                            await http.get(f"{base}/{upload.token}/chargerfw-2.0-release.tar"),
                            await http.get(f"{base}/nonsense/chargerfw-2.0-release.tar"),
                            await http.get(cp2_url),
                            await http.put(url, content=b"x")]
                assert [r.status_code for r in refusals] == [404, 404, 404, 404, 403, 405]
                assert all(b"release" not in r.content for r in refusals)
                # The refusals left the right charger's URL usable: a HEAD does not use it.
                head = await http.head(url)
                first = await http.get(url)
                await wait_until(lambda: token_used_up(csms, issued.token), 10,
                                 "the download used its token up")
                second = await http.get(url)
            assert head.status_code == 200
            assert (first.status_code, first.content) == (200, content)
            assert second.status_code == 404
        del upload_url


async def test_diagnostics_and_logs_are_uploaded_once_within_the_limit(
        db: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "files"
    async with csms_running(db, data_dir=str(data_dir), max_upload_bytes=4096,
                            operator_command_poll_s=0.1) as csms:
        assert csms.files is not None
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            charger.upload_body = b"diagnostics bundle " * 100
            code, out = await csms_cli("cp", "diagnostics", "CP1", "--start",
                                       "2027-01-01T00:00:00Z", "--follow",
                                       "--follow-timeout", "30", "--db", db)
            assert code == 0, out
            assert [line.split()[1] for line in out.splitlines()] == [
                "Accepted:", "Uploading", "Uploaded"]
            [(_, sent)] = [r for r in charger.received if r[0] == "GetDiagnostics"]
            assert sent["location"].startswith(f"{files_url(csms)}/diagnostics/")
            assert sent["start_time"] == "2027-01-01T00:00:00Z"

            charger.upload_method = "POST"
            charger.upload_body = b"security log " * 50
            charger.upload_name = "security.log"
            code, out = await csms_cli("cp", "log", "CP1", "--type", "SecurityLog",
                                       "--follow", "--follow-timeout", "30", "--db", db,
                                       "--json")
            assert code == 0, out
            assert json.loads(out.split("\n}\n")[0] + "}")["status"] == "Accepted"
            [(_, log_request)] = [r for r in charger.received if r[0] == "GetLog"]
            assert log_request["log_type"] == "SecurityLog"

            charger.answers["GetLog"] = "Rejected"
            code, out = await csms_cli("cp", "log", "CP1", "--type", "DiagnosticsLog",
                                       "--db", db)
            assert code == 1 and "CP1: Rejected: the charger refused to upload the log" in out

        code, out = await csms_cli("cp", "diagnostics-files", "CP1", "--db", db,
                                   "--data-dir", str(data_dir), "--json")
        files = json.loads(out)
        assert [(f["kind"], f["file_name"]) for f in files] == [
            ("diagnostics", None), ("log", "security.log")]
        assert Path(files[0]["full_path"]).read_bytes() == b"diagnostics bundle " * 100
        assert Path(files[1]["full_path"]).read_bytes() == b"security log " * 50
        assert Path(files[1]["full_path"]).parent == data_dir / "uploads" / "CP1"

        # Refusals: another address, too large (declared or streamed), path parts, a used or
        # unknown URL.
        issued, url = await csms.files.issue("CP1", "diagnostics")
        elsewhere = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
        async with httpx.AsyncClient(transport=elsewhere) as stranger:
            foreign = await stranger.put(url, content=b"not from CP1")
        assert foreign.status_code == 403

        async def chunks() -> Any:
            for _ in range(5):
                yield b"y" * 1000

        async with httpx.AsyncClient() as http:
            too_large = await http.put(url, content=b"y" * 5000)
            streamed = await http.put(url, content=chunks())
            sneaky = await http.post(url, files={"file": ("../../etc/cron.d/x", b"z")})
            no_field = await http.post(url, files={"other": ("a.txt", b"z")})
            assert [r.status_code for r in (too_large, streamed, sneaky, no_field)] == [
                413, 413, 400, 400]
            assert len(await csms.db(csms.store.received_files, "CP1")) == 2
            assert sorted(p.name for p in (data_dir / "uploads" / "CP1").iterdir()) == sorted(
                Path(f["path"]).name for f in files)
            stored = await http.put(url, content=b"small")
            reused = await http.put(url, content=b"again")
            unknown = await http.put(url[:-4] + "abcd", content=b"x")
        assert [r.status_code for r in (stored, reused, unknown)] == [201, 404, 404]
        assert len(await csms.db(csms.store.received_files, "CP1")) == 3
        del issued


async def test_cli_refusals(db: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "files"
    async with csms_running(db, data_dir=str(data_dir), operator_command_poll_s=0.1) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        not_tar = tmp_path / "junk.tar"
        not_tar.write_bytes(b"not a tar at all")
        code, out = await csms_cli("firmware", "publish", str(not_tar), "--db", db,
                                   "--data-dir", str(data_dir))
        assert code == 2 and "not a readable tar archive" in out
        no_manifest = tmp_path / "empty.tar"
        with tarfile.open(no_manifest, "w"):
            pass
        code, out = await csms_cli("firmware", "publish", str(no_manifest), "--db", db,
                                   "--data-dir", str(data_dir))
        assert code == 2 and "holds no manifest.json" in out
        bad_version = tmp_path / "bad.tar"
        make_release(bad_version, "../1", b"")
        code, out = await csms_cli("firmware", "publish", str(bad_version), "--db", db,
                                   "--data-dir", str(data_dir))
        assert code == 2 and "no version of dot-separated integers" in out
        assert await csms.db(csms.store.list_releases) == []
        assert not (data_dir / "firmware").exists() or not any(
            (data_dir / "firmware").iterdir())

        code, out = await csms_cli("cp", "firmware", "update", "CP1", "9.9", "--db", db)
        assert code == 2 and "no published release '9.9'" in out
        code, out = await csms_cli("cp", "firmware", "update", "CP1", "9.9", "--url",
                                   "http://example.com/fw.bin", "--db", db)
        assert code == 2 and "give a published release's VERSION or --url" in out
        code, out = await csms_cli("cp", "firmware", "update", "CP1", "--url",
                                   "http://example.com/fw.bin", "--retrieve-date",
                                   "2027-01-01T00:00:00", "--db", db)
        assert code == 2 and "has no UTC offset" in out
        code, out = await csms_cli("cp", "firmware", "update", "NOPE", "--url",
                                   "http://example.com/fw.bin", "--db", db)
        assert code == 2 and "unknown charge point 'NOPE'" in out
        code, out = await csms_cli("cp", "diagnostics", "CP1", "--db", db)
        assert code == 1 and "CP1: NotConnected" in out
        code, out = await csms_cli("cp", "firmware", "update", "CP1", "--url",
                                   "http://example.com/fw.bin", "--db", db)
        assert code == 1 and "CP1: NotConnected" in out
        code, out = await csms_cli("cp", "log", "CP1", "--type", "SecurityLog", "--db", db)
        assert code == 1 and "CP1: NotConnected" in out
        code, out = await csms_cli("cp", "diagnostics-files", "NOPE", "--db", db)
        assert code == 2 and "unknown charge point 'NOPE'" in out

        async with sim_charger(csms, "CP1") as charger:
            code, out = await csms_cli("cp", "firmware", "update", "CP1", "--url",
                                       "ftp://fw.example.com/chargerfw.tar", "--retrieve-date",
                                       "2027-01-01T01:00:00+01:00", "--db", db, "--json")
            assert code == 0 and json.loads(out)["status"] == "Accepted"
            [(_, sent)] = [r for r in charger.received if r[0] == "UpdateFirmware"]
            assert sent == {"location": "ftp://fw.example.com/chargerfw.tar",
                            "retrieve_date": "2027-01-01T00:00:00Z"}
            # Following a process the charger never finishes ends after the timeout.
            code, out = await csms_cli("cp", "firmware", "update", "CP1", "--url",
                                       "http://fw.example.com/x.tar", "--follow",
                                       "--follow-timeout", "1", "--db", db)
            assert code == 1 and "no final status from CP1 within 1 s" in out


async def test_a_backend_without_a_file_server_refuses_uploads_but_sends_urls(
        tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    async with csms_running(db, files_port=None, operator_command_poll_s=0.1) as csms:
        assert csms.files is None
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            code, out = await csms_cli("cp", "diagnostics", "CP1", "--db", db)
            assert code == 1 and "CP1: Invalid: this backend serves no files" in out
            code, out = await csms_cli("cp", "firmware", "update", "CP1", "--url",
                                       "https://fw.example.com/1.tar", "--db", db)
            assert code == 0 and out.startswith("CP1: Accepted")
        assert [action for action, _ in charger.received] == ["UpdateFirmware"]
