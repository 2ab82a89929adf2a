"""TLS on the backend: OCPP over wss (security profiles 2 and 3, the client certificate's CN
bound to the charge point id), the HTTP ports over https, the cipher suites and TLS
versions it accepts, and when it may serve plain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cert_factory import Issued, client_certificate, issue, server_certificate
from click.testing import CliRunner
from csms_doubles import add_test_charger, basic_auth, csms_running
from fakes import wait_until
from ocpp_support import running_client
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from chargerfw.cli import main
from chargerfw.config.station import SecuritySection
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.tls import (
    TlsFiles,
    TlsSetupError,
    certificate_common_names,
    plain_exposed_hosts,
    server_context,
)

pytestmark = pytest.mark.timeout(60)
PASSWORD = "profile2-password-0123"


@dataclass
class Pki:
    dir: Path
    ca: Issued  # the operator's CA: the server certificate and chargers' certificates
    files: TlsFiles

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.pem"

    def client(self, charge_point_id: str, issuer: Issued | None = None,
               **kwargs: Any) -> ssl.SSLContext:
        """A charger's TLS context: trusts the CA, presents a certificate for the id."""
        cert = client_certificate(issuer or self.ca, charge_point_id, **kwargs)
        cert_path, key_path = cert.write(self.dir, f"client-{charge_point_id}-"
                                         f"{cert.cert.serial_number}")
        context = self.trusting()
        context.load_cert_chain(cert_path, key_path)
        return context

    def trusting(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.load_verify_locations(cafile=self.ca_file)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    d = tmp_path / "pki"
    ca = issue("Operator CA", ca=True)
    d.mkdir()
    (d / "ca.pem").write_text(ca.pem)
    cert, key = server_certificate(ca, "localhost").write(d, "server")
    return Pki(d, ca, TlsFiles(cert, key, d / "ca.pem"))


async def _events(csms: RunningCsms, charge_point_id: str) -> list[dict[str, Any]]:
    return [{"kind": e["kind"], **e["data"]}
            for e in await csms.db(csms.store.charge_point_events, charge_point_id)]


@pytest.fixture
async def tls_csms(db: str, pki: Pki) -> AsyncIterator[RunningCsms]:
    async with csms_running(db, tls=pki.files, admin_port=0) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", PASSWORD, None, "LOC1")
        await csms.db(add_test_charger, csms.store, "CP2", PASSWORD, None, "LOC2")
        yield csms


async def test_our_station_on_profile_2_connects_over_wss_and_boots(
        tls_csms: RunningCsms, pki: Pki, tmp_path: Path) -> None:
    assert tls_csms.ocpp_url.startswith("wss://127.0.0.1:")
    security = SecuritySection(certificates_dir=tmp_path / "certs")
    security.central_system_roots_dir.mkdir(parents=True)
    shutil.copy(pki.ca_file, security.central_system_roots_dir / "fleet-root.pem")
    (tmp_path / "station").mkdir()
    async with running_client(tmp_path / "station", tls_csms.ocpp_url, profile=2,
                              password=PASSWORD, security=security) as client:
        await wait_until(lambda: client.online, what="the station online over wss")
        row = await tls_csms.db(tls_csms.store.get_charge_point, "CP1")
        assert row["last_boot"] is not None and row["vendor"] == "chargerfw"
        # Basic auth over TLS does not bind it to profile 3.
        assert row["client_certificate_required"] is False


async def test_profile_3_client_certificate_authenticates_its_own_id_only(
        tls_csms: RunningCsms, pki: Pki) -> None:
    url = tls_csms.ocpp_url
    cp1 = pki.client("CP1")
    async with connect(f"{url}/CP1", subprotocols=["ocpp1.6"], ssl=cp1) as ws:
        assert ws.subprotocol == "ocpp1.6"
        await wait_until(lambda: "CP1" in tls_csms.ocpp.connected)
    row = await tls_csms.db(tls_csms.store.get_charge_point, "CP1")
    assert row["client_certificate_required"] is True

    # CP1's certificate does not open CP2's connection, not even with CP2's password.
    with pytest.raises(InvalidStatus) as other_id:
        async with connect(f"{url}/CP2", subprotocols=["ocpp1.6"], ssl=cp1,
                           additional_headers=basic_auth("CP2", PASSWORD)):
            pass
    assert other_id.value.response.status_code == 403
    [refused] = await _events(tls_csms, "CP2")
    assert refused["kind"] == "ConnectionRefused"
    assert refused["status"] == "CertificateIdMismatch" and "'CP1'" in refused["detail"]
    assert "CP2" not in tls_csms.ocpp.connected

    # A certificate for CP1 from another CA fails the TLS handshake: no HTTP request at all.
    stranger = pki.client("CP1", issuer=issue("Someone else's CA", ca=True))
    with pytest.raises((ssl.SSLError, InvalidHandshake, ConnectionError)):
        async with connect(f"{url}/CP1", subprotocols=["ocpp1.6"], ssl=stranger,
                           open_timeout=5):
            pass
    # An expired certificate from the right CA likewise.
    expired = pki.client("CP1", not_after=datetime.now(UTC) - timedelta(days=1))
    with pytest.raises((ssl.SSLError, InvalidHandshake, ConnectionError)):
        async with connect(f"{url}/CP1", subprotocols=["ocpp1.6"], ssl=expired,
                           open_timeout=5):
            pass
    assert [e["status"] for e in await _events(tls_csms, "CP1")] == []


async def test_a_profile_3_charger_cannot_fall_back_to_basic_auth(
        tls_csms: RunningCsms, pki: Pki) -> None:
    url = f"{tls_csms.ocpp_url}/CP1"
    # Before it ever used a certificate, Basic auth over TLS (profile 2) is fine.
    async with connect(url, subprotocols=["ocpp1.6"], ssl=pki.trusting(),
                       additional_headers=basic_auth("CP1", PASSWORD)):
        pass
    async with connect(url, subprotocols=["ocpp1.6"], ssl=pki.client("CP1")):
        pass
    with pytest.raises(InvalidStatus) as downgraded:
        async with connect(url, subprotocols=["ocpp1.6"], ssl=pki.trusting(),
                           additional_headers=basic_auth("CP1", PASSWORD)):
            pass
    assert downgraded.value.response.status_code == 401
    [refused] = await _events(tls_csms, "CP1")
    assert refused["kind"] == "ConnectionRefused" and refused["status"] == "CertificateRequired"
    # The operator lowers it (not OCPP): Basic auth works again.
    assert await tls_csms.db(tls_csms.store.require_client_certificate, "CP1", False) is True
    async with connect(url, subprotocols=["ocpp1.6"], ssl=pki.trusting(),
                       additional_headers=basic_auth("CP1", PASSWORD)) as ws:
        assert ws.subprotocol == "ocpp1.6"


async def test_a_client_certificate_registers_an_unknown_charger_only_with_auto_register(
        tmp_path: Path, pki: Pki) -> None:
    async with csms_running(str(tmp_path / "a.db"), tls=pki.files) as csms:
        with pytest.raises(InvalidStatus) as unknown:
            async with connect(f"{csms.ocpp_url}/NEW1", subprotocols=["ocpp1.6"],
                               ssl=pki.client("NEW1")):
                pass
        assert unknown.value.response.status_code == 404
        assert await csms.db(csms.store.get_charge_point, "NEW1") is None
    async with csms_running(str(tmp_path / "b.db"), tls=pki.files, auto_register=True) as csms:
        async with connect(f"{csms.ocpp_url}/NEW1", subprotocols=["ocpp1.6"],
                           ssl=pki.client("NEW1")):
            pass
        row = await csms.db(csms.store.get_charge_point, "NEW1")
        assert row["auto_registered"] is True and row["client_certificate_required"] is True
        assert row["password_hash"] is None


async def test_http_ports_answer_over_https_only(tls_csms: RunningCsms, pki: Pki) -> None:
    assert tls_csms.api_url.startswith("https://") and tls_csms.admin_url is not None
    assert tls_csms.files is not None
    files_url = tls_csms.files.settings.base_url
    assert files_url.startswith("https://")
    async with httpx.AsyncClient(verify=pki.trusting(), timeout=5) as client:
        feed = await client.get(f"{tls_csms.api_url}/opendata/locations")
        assert feed.status_code == 200
        assert {loc["id"] for loc in feed.json()["data"]} == {"LOC1", "LOC2"}
        versions = await client.get(f"{tls_csms.api_url}/ocpi/versions")
        assert versions.status_code == 401  # over TLS, and still needs a token
        admin = await client.get(f"{tls_csms.admin_url}/chargepoints")
        assert admin.status_code == 401
        assert (await client.get(f"{files_url}/diagnostics/x")).status_code == 405
    async with httpx.AsyncClient(timeout=5) as plain:
        for url in (f"{tls_csms.api_url}/opendata/locations",
                    f"{tls_csms.admin_url}/chargepoints", f"{files_url}/diagnostics/x"):
            with pytest.raises(httpx.TransportError):
                await plain.get(url.replace("https://", "http://"))


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
async def test_only_tls_1_2_or_newer_with_the_whitepaper_suites(
        tls_csms: RunningCsms, pki: Pki) -> None:
    async def handshake(context: ssl.SSLContext) -> str | None:
        _, writer = await asyncio.open_connection("127.0.0.1", tls_csms.ocpp_port, ssl=context,
                                                  server_hostname="localhost")
        try:
            cipher = writer.get_extra_info("cipher")
            return str(cipher[0]) if cipher else None
        finally:
            writer.close()
            with contextlib.suppress(ssl.SSLError, ConnectionError):
                await writer.wait_closed()

    tls12 = pki.trusting()
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    tls12.set_ciphers("ECDHE-ECDSA-AES256-GCM-SHA384")
    assert await handshake(tls12) == "ECDHE-ECDSA-AES256-GCM-SHA384"
    # A suite outside the whitepaper's (the client would take it; the server does not).
    chacha = pki.trusting()
    chacha.maximum_version = ssl.TLSVersion.TLSv1_2
    chacha.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    # The server drops the handshake (no shared suite).
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await handshake(chacha)
    # TLS 1.1 (the client offers it at security level 0; the server refuses it).
    old = pki.trusting()
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        await handshake(old)


def _serve(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", "serve", "--ocpp-port", "0", "--api-port", "0",
                                       "--files-port", "0", *args])
    return result.exit_code, result.output


def test_plain_is_for_loopback_unless_allowed() -> None:
    assert plain_exposed_hosts(["127.0.0.1", "::1", "localhost", "127.0.0.2"], tls=False,
                               allow_plain=False) == ()
    with pytest.raises(TlsSetupError, match="refusing to serve plain ws/http on 0.0.0.0, "
                                            "192.0.2.7: give --tls-cert"):
        plain_exposed_hosts(["127.0.0.1", "192.0.2.7", "0.0.0.0"], tls=False,
                            allow_plain=False)
    assert plain_exposed_hosts(["0.0.0.0", "127.0.0.1"], tls=False,
                               allow_plain=True) == ("0.0.0.0",)
    assert plain_exposed_hosts(["0.0.0.0"], tls=True, allow_plain=False) == ()


def test_serve_refuses_a_plain_network_address_before_listening(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    code, out = _serve("--db", str(db), "--host", "0.0.0.0")
    assert code == 2 and "refusing to serve plain ws/http on 0.0.0.0" in out
    # The admin API's address counts too.
    code, out = _serve("--db", str(db), "--admin-port", "0", "--admin-host", "192.0.2.7")
    assert code == 2 and "plain ws/http on 192.0.2.7" in out
    assert not db.exists()  # refused before the database was touched


def test_serve_refuses_unusable_certificate_files(tmp_path: Path, pki: Pki) -> None:
    db = tmp_path / "c.db"
    now = datetime.now(UTC)
    expired_cert, expired_key = server_certificate(
        pki.ca, not_before=now - timedelta(days=60),
        not_after=now - timedelta(days=1)).write(tmp_path, "expired")
    code, out = _serve("--db", str(db), "--tls-cert", str(expired_cert),
                       "--tls-key", str(expired_key))
    assert code == 2
    assert f"the server certificate {expired_cert} (CN=localhost,O=Test Organisation) " \
           f"expired on" in out
    future_cert, future_key = server_certificate(
        pki.ca, not_before=now + timedelta(days=2)).write(tmp_path, "future")
    code, out = _serve("--db", str(db), "--tls-cert", str(future_cert),
                       "--tls-key", str(future_key))
    assert code == 2 and "is not valid before" in out
    code, out = _serve("--db", str(db), "--tls-cert", str(pki.files.cert),
                       "--tls-key", str(expired_key))
    assert code == 2 and f"the key {expired_key} does not fit" in out
    code, out = _serve("--db", str(db), "--tls-cert", str(pki.files.key),
                       "--tls-key", str(pki.files.key))
    assert code == 2 and "holds no PEM certificate" in out
    code, out = _serve("--db", str(db), "--tls-cert", str(pki.files.cert))
    assert code == 2 and "--tls-cert and --tls-key go together" in out
    code, out = _serve("--db", str(db), "--tls-client-ca", str(pki.ca_file))
    assert code == 2 and "--tls-client-ca needs --tls-cert" in out
    assert not db.exists()


def test_an_expired_client_ca_is_refused(pki: Pki, tmp_path: Path) -> None:
    old_ca = issue("Old CA", ca=True, not_before=datetime.now(UTC) - timedelta(days=400),
                   not_after=datetime.now(UTC) - timedelta(days=5))
    (tmp_path / "old-ca.pem").write_text(old_ca.pem)
    with pytest.raises(TlsSetupError, match="the client CA .*old-ca.pem .* expired on"):
        server_context(TlsFiles(pki.files.cert, pki.files.key, tmp_path / "old-ca.pem"),
                       client_certificates=True)


def test_certificate_common_names() -> None:
    assert certificate_common_names(None) == [] and certificate_common_names({}) == []
    assert certificate_common_names({"subject": ((("organizationName", "Fleet"),),
                                                 (("commonName", "CP1"),))}) == ["CP1"]


@pytest.mark.timeout(60)
def test_serve_with_tls_and_client_certificates(tmp_path: Path, pki: Pki) -> None:
    """The real process: wss and https in the banner; a profile 3 charger connects; the
    operator lets it use Basic auth again with `charger client-certificate`."""
    from websockets.sync.client import connect as sync_connect

    db = str(tmp_path / "c.db")
    added = CliRunner().invoke(main, [
        "csms", "charger", "add", "CP1", "--db", db, "--password", PASSWORD,
        "--location-id", "LOC1", "--address", "Main 1", "--city", "Utrecht",
        "--country", "NLD", "--coordinates", "52.08917,5.11028",
        "--time-zone", "Europe/Amsterdam"])
    assert added.exit_code == 0, added.output
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargerfw", "csms", "serve", "--db", db, "--ocpp-port", "0",
         "--api-port", "0", "--files-port", "0", "--tls-cert", str(pki.files.cert),
         "--tls-key", str(pki.files.key), "--tls-client-ca", str(pki.ca_file)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CHARGERFW_LOG_LEVEL": "WARNING"})
    try:
        assert proc.stdout is not None
        ocpp_line, api_line, open_line, files_line = (proc.stdout.readline() for _ in range(4))
        assert ocpp_line.startswith("OCPP  wss://127.0.0.1:"), (
            ocpp_line, proc.stderr.read() if proc.stderr else "")
        assert api_line.startswith("OCPI  https://") and open_line.startswith("open  https://")
        assert files_line.startswith("files https://")
        url = ocpp_line.split()[1].replace("<charge_point_id>", "CP1")
        with sync_connect(url, subprotocols=["ocpp1.6"], ssl=pki.client("CP1")) as ws:
            assert ws.subprotocol == "ocpp1.6"
        listed = CliRunner().invoke(main, ["csms", "charger", "list", "--db", db]).output
        assert [line.split()[2] for line in listed.splitlines()
                if line.startswith("CP1")] == ["certificate"]
        with pytest.raises(InvalidStatus):
            with sync_connect(url, subprotocols=["ocpp1.6"], ssl=pki.trusting(),
                              additional_headers=basic_auth("CP1", PASSWORD)):
                pass
        result = CliRunner().invoke(main, ["csms", "charger", "client-certificate", "CP1",
                                           "--db", db, "--not-required"])
        assert result.exit_code == 0
        assert result.output == "CP1: may use Basic auth\n"
        with sync_connect(url, subprotocols=["ocpp1.6"], ssl=pki.trusting(),
                          additional_headers=basic_auth("CP1", PASSWORD)) as ws:
            assert ws.subprotocol == "ocpp1.6"
        result = CliRunner().invoke(main, ["csms", "charger", "client-certificate", "NOPE",
                                           "--db", db, "--required"])
        assert result.exit_code == 2 and "unknown charge point 'NOPE'" in result.output
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
