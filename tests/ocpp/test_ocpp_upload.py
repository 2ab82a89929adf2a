"""Uploads to the location the backend named: HTTP POST multipart and PUT to a loopback
server, FTP STOR to a real pyftpdlib server, each failure its kind, retries."""

from __future__ import annotations

import socket

import pytest
from upload_servers import FtpUploadServer, HttpUploadServer

from chargerfw.ocpp.upload import (
    UnsupportedLocation,
    UploadError,
    UploadFailure,
    check_location,
    upload,
    upload_with_retries,
)

pytestmark = pytest.mark.timeout(30)

CONTENT = bytes(range(256)) * 64


@pytest.fixture
def payload(tmp_path):
    path = tmp_path / "bundle.tar.gz"
    path.write_bytes(CONTENT)
    return path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_http_post_sends_the_file_as_multipart_field_file(payload):
    with HttpUploadServer() as server:
        await upload(payload, server.url + "/diagnostics/CP1", "CP1-diag.tar.gz")
    [got] = server.received
    assert (got.method, got.path) == ("POST", "/diagnostics/CP1")
    assert got.file_name == "CP1-diag.tar.gz" and got.file == CONTENT


async def test_http_put_when_post_is_not_allowed(payload):
    with HttpUploadServer(statuses={"POST": [405]}) as server:
        await upload(payload, server.url + "/uploads/", "CP1-diag.tar.gz")
    assert [(r.method, r.path) for r in server.received] == [
        ("POST", "/uploads/"), ("PUT", "/uploads/CP1-diag.tar.gz")]
    assert server.received[1].file == CONTENT


@pytest.mark.parametrize(("status", "failure"), [
    (401, UploadFailure.PERMISSION_DENIED), (403, UploadFailure.PERMISSION_DENIED),
    (413, UploadFailure.BAD_MESSAGE), (500, UploadFailure.FAILED)])
async def test_http_answers_map_to_failures(payload, status, failure):
    with HttpUploadServer(statuses={"POST": [status]}) as server:
        with pytest.raises(UploadError) as raised:
            await upload(payload, server.url + "/x", "f.tar.gz")
    assert raised.value.failure is failure and str(status) in str(raised.value)


async def test_ftp_stores_the_file_in_the_directory(payload, tmp_path):
    with FtpUploadServer(tmp_path / "ftp") as server:
        (tmp_path / "ftp" / "logs").mkdir()
        await upload(payload, server.url("logs/"), "CP1-diag.tar.gz")
    assert (tmp_path / "ftp" / "logs" / "CP1-diag.tar.gz").read_bytes() == CONTENT


async def test_ftp_wrong_password_is_permission_denied_and_not_in_the_error(payload, tmp_path):
    with FtpUploadServer(tmp_path / "ftp") as server:
        with pytest.raises(UploadError) as raised:
            await upload(payload, server.url(password="wrongpass"), "f.tar.gz")
    assert raised.value.failure is UploadFailure.PERMISSION_DENIED
    assert "wrongpass" not in str(raised.value)


@pytest.mark.parametrize("location", ["file:///tmp/x", "mailto:a@b", "http://", "ftp:///dir",
                                      "http://host:port/x", "sftp://host/x"])
def test_unsupported_locations(location):
    with pytest.raises(UnsupportedLocation):
        check_location(location)


async def test_unreachable_location_is_tried_1_plus_retries_times(payload):
    port = _closed_port()
    with pytest.raises(UploadError) as raised:
        await upload_with_retries(payload, f"http://127.0.0.1:{port}/x", "f.tar.gz",
                                  retries=2, retry_interval_s=0.01, timeout_s=2)
    assert raised.value.failure is UploadFailure.FAILED


async def test_retries_until_the_server_takes_it(payload):
    with HttpUploadServer(statuses={"POST": [503, 503]}) as server:
        attempts = await upload_with_retries(payload, server.url + "/x", "f.tar.gz",
                                             retries=3, retry_interval_s=0.01)
    assert attempts == 3 and [r.method for r in server.received] == ["POST"] * 3
