"""Downloading a release over HTTP and FTP, resumed after a cut, against loopback servers."""

from __future__ import annotations

import threading

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from firmware_servers import ftp_server, http_server

from chargerfw.logs import capture_logs
from chargerfw.release import HashMismatch, build_manifest, verify_release, write_release
from chargerfw.release.download import (
    DownloadCancelled,
    DownloadError,
    ProgressLog,
    download,
    partial_path,
    safe_location,
)

BODY = bytes(range(256)) * 1024  # 256 KiB


def test_http_download_resumes_after_a_cut_connection(tmp_path):
    target = tmp_path / "fw.tar"
    with http_server({"/fw.tar": BODY}) as server:
        server.cut_after["/fw.tar"] = 100_000
        with pytest.raises(DownloadError, match="received 100000 bytes, expected 262144"):
            download(f"{server.url}/fw.tar", target)
        assert partial_path(target).stat().st_size == 100_000
        assert not target.exists()
        seen: list[tuple[int, int | None]] = []
        download(f"{server.url}/fw.tar", target, progress=lambda r, t: seen.append((r, t)))
    assert target.read_bytes() == BODY
    assert not partial_path(target).exists()
    assert server.ranges == [None, "bytes=100000-"]
    assert seen[0][0] > 100_000 and seen[-1] == (len(BODY), len(BODY))


def test_the_resumed_part_is_only_the_rest(tmp_path):
    """The bytes already there are kept as they are: only the rest is fetched."""
    target = tmp_path / "fw.tar"
    partial_path(target).write_bytes(b"X" * 1000)
    with http_server({"/fw.tar": BODY}) as server:
        download(f"{server.url}/fw.tar", target)
    assert target.read_bytes() == b"X" * 1000 + BODY[1000:]


def test_http_404_is_a_failed_try(tmp_path):
    with http_server({}) as server, pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/missing.tar", tmp_path / "fw.tar")
    assert not (tmp_path / "fw.tar").exists()


def test_a_partial_file_longer_than_the_file_starts_over(tmp_path):
    target = tmp_path / "fw.tar"
    partial_path(target).write_bytes(b"X" * (len(BODY) + 5))
    with http_server({"/fw.tar": BODY}) as server:
        with pytest.raises(DownloadError, match="416"):
            download(f"{server.url}/fw.tar", target)
        download(f"{server.url}/fw.tar", target)
    assert target.read_bytes() == BODY


def test_unreachable_and_unsupported_locations(tmp_path):
    with pytest.raises(DownloadError, match="ConnectError"):
        download("http://127.0.0.1:9/fw.tar", tmp_path / "a", timeout_s=2)
    with pytest.raises(DownloadError, match="unsupported location scheme 'file'"):
        download("file:///etc/passwd", tmp_path / "b")


def test_a_cancelled_download_stops(tmp_path):
    cancel = threading.Event()
    cancel.set()
    with http_server({"/fw.tar": BODY}) as server, pytest.raises(DownloadCancelled):
        download(f"{server.url}/fw.tar", tmp_path / "fw.tar", cancel=cancel)


def test_ftp_download_and_resume(tmp_path):
    root = tmp_path / "ftp"
    root.mkdir()
    (root / "fw.tar").write_bytes(BODY)
    target = tmp_path / "fw.tar"
    with ftp_server(root) as base:
        download(f"{base}/fw.tar", target)
        assert target.read_bytes() == BODY
        # A partial file: only the rest is fetched (REST), the bytes there are kept.
        target.unlink()
        partial_path(target).write_bytes(b"X" * 5000)
        download(f"{base}/fw.tar", target)
        assert target.read_bytes() == b"X" * 5000 + BODY[5000:]
        with pytest.raises(DownloadError, match="550"):
            download(f"{base}/missing.tar", tmp_path / "other.tar")
        with pytest.raises(DownloadError, match="530"):
            download(base.replace("secret", "wrong") + "/fw.tar", tmp_path / "other.tar")


def test_a_downloaded_release_with_a_wrong_hash_is_refused(tmp_path):
    key = Ed25519PrivateKey.generate()
    files = {"wheels/chargerfw-9.0-py3-none-any.whl": b"payload-bytes"}
    archive = write_release(tmp_path / "r.tar", build_manifest("9.0", "0", files), files, key)
    tampered = archive.read_bytes().replace(b"payload-bytes", b"PAYLOAD-bytes")
    with http_server({"/r.tar": tampered}) as server:
        got = download(f"{server.url}/r.tar", tmp_path / "got.tar")
    with pytest.raises(HashMismatch):
        verify_release(got, key.public_key())


def test_progress_is_logged_at_a_bounded_rate_without_the_password():
    now = [0.0]
    progress = ProgressLog("ftp://u:pw@host/fw.tar", every_s=5.0, clock=lambda: now[0])
    with capture_logs() as logs:
        for received in range(0, 1001, 100):
            progress(received, 1000)
            now[0] += 1.0
    lines = [e for e in logs if e["event"] == "firmware.download_progress"]
    assert [e["bytes"] for e in lines] == [0, 500, 1000]
    assert lines[-1]["percent"] == 100.0
    assert all(e["location"] == "ftp://u:***@host/fw.tar" for e in lines)
    assert (progress.received, progress.total, progress.percent) == (1000, 1000, 100.0)
    assert safe_location("http://host/x") == "http://host/x"
