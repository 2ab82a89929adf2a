"""Our station and our backend, moved from security profile 1 through 2 to 3 by
`chargerfw csms cp security-migrate`: the backend's TLS root installed on the station, the
profile raised to 2 (wss to the backend's TLS port), a fresh AuthorizationKey over TLS, a key
pair and CSR made on the station and signed by the fleet CA, then profile 3 with the station's
client certificate — each step verified by the command. A restarted station stays on 3, and
neither side logs the keys."""

from __future__ import annotations

import asyncio
import base64
import logging
import tomllib
from pathlib import Path
from typing import Any

import pytest
from cert_factory import Issued, server_certificate
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from csms_doubles import add_test_charger, csms_running
from fakes import wait_until
from runtime_helpers import dump_toml, running_station, sim_station_config

from chargerfw.cli import main as cli_main
from chargerfw.config import parse_config
from chargerfw.csms.fleet_ca import CA_KEY, init_ca
from chargerfw.csms.store import verify_password
from chargerfw.csms.tls import TlsFiles
from chargerfw.logs import capture_logs

pytestmark = pytest.mark.timeout(180)

FIRST_PASSWORD = "first-password-1"


def _fleet_ca(directory: Path) -> Issued:
    init_ca(directory, common_name="Test fleet CA", organization="Test CPO")
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Issued(key, x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes()))


async def _cli(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, cli_main, list(args))


async def test_our_station_is_migrated_from_profile_1_to_3_by_our_backend(
        tmp_path: Path, short_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    # On SQLite only: the migration's database work is the fleet CA tests' (both databases).
    db = str(tmp_path / "csms.sqlite3")
    caplog.set_level(logging.DEBUG)  # every library's lines too (ocpp, websockets)
    ca_dir = tmp_path / "ca"
    ca = _fleet_ca(ca_dir)
    server_cert, server_key = server_certificate(ca).write(tmp_path / "server", "server")
    settings = dict(ca_dir=str(ca_dir), cpo_name="Test CPO",
                    tls=TlsFiles(server_cert, server_key, ca_dir / "ca.pem"), plain_ocpp_port=0)
    with capture_logs() as logged:
        async with csms_running(db, **settings) as csms:
            await csms.db(add_test_charger, csms.store, "CP1", FIRST_PASSWORD)
            assert csms.plain_ocpp_url is not None
            path, _ = sim_station_config(tmp_path, csms.plain_ocpp_url, password=FIRST_PASSWORD)
            raw = tomllib.loads(path.read_text())
            raw["ocpp"]["secure_url"] = csms.ocpp_url
            raw["security"] = {"certificates_dir": str(tmp_path / "station-certs")}
            path.write_text(dump_toml(raw))
            config = parse_config(tomllib.loads(path.read_text()), str(path))
            sock = short_dir / "control.sock"

            async with running_station(config, sock):
                # Connected, booted and its profile noted (what the command reads).
                await wait_until(lambda: "CP1" in csms.ocpp.connected
                                 and csms.store.get_charge_point("CP1")["last_boot"]
                                 and csms.store.get_charge_point("CP1")["security_profile"] == 1,
                                 timeout=20, what="the station on profile 1")
                result = await _cli("csms", "cp", "security-migrate", "CP1", "--to-profile",
                                    "3", "--root", str(ca_dir / "ca.pem"), "--cpo-name",
                                    "Test CPO", "--db", db, "--wait", "30",
                                    "--reconnect-timeout", "40")
                assert result.exit_code == 0, result.output
                steps = [line.split(": ")[1:3] for line in result.output.splitlines()
                         if ": ok: " in line]
                assert steps == [
                    ["profile 2", "install root"], ["profile 2", "check root"],
                    ["profile 2", "raise profile"], ["profile 2", "authorization key"],
                    ["profile 3", "cpo name"], ["profile 3", "certificate"],
                    ["profile 3", "raise profile"]]
                await wait_until(lambda: "CP1" in csms.ocpp.connected
                                 and csms.ocpp.connected["CP1"].security_profile == 3,
                                 timeout=20, what="the station on profile 3")
                stored = csms.store.get_charge_point("CP1")
                assert stored["security_profile"] == 3
                # The key the backend chose is the one the station keeps (in its file).
                key_file = config.security.authorization_key_file
                assert key_file.stat().st_mode & 0o077 == 0
                key_text = key_file.read_text()
                new_key = next(k for k in _keys_in(key_text)
                               if verify_password(k, stored["password_hash"]))
                assert new_key != FIRST_PASSWORD
                # The station's certificate came from the fleet CA, for its own id.
                cert = x509.load_pem_x509_certificate(
                    config.security.charge_point_certificate.read_bytes())
                assert cert.issuer == ca.cert.subject
                assert cert.subject.rfc4514_string() == "CN=CP1,O=Test CPO"
                assert csms.store.current_certificate("CP1") is not None

            # Restarted, it connects on profile 3 again (with its certificate, no password).
            before = csms.store.get_charge_point("CP1")["connection_count"]
            async with running_station(config, sock):
                await wait_until(lambda: csms.store.get_charge_point("CP1")["connection_count"]
                                 > before and "CP1" in csms.ocpp.connected, timeout=20,
                                 what="the restarted station connected")
                assert csms.ocpp.connected["CP1"].security_profile == 3
    everything = "\n".join([*(repr(entry) for entry in logged), caplog.text, result.output])
    assert "AuthorizationKey" in everything  # the frames were logged, redacted
    for secret in (FIRST_PASSWORD, new_key):
        assert secret not in everything
        assert base64.b64encode(f"CP1:{secret}".encode()).decode() not in everything


def _keys_in(text: str) -> list[str]:
    """Every string value of the station's key file (the key, and a fallback if one is
    kept)."""
    import json

    values: list[str] = []
    pending: list[Any] = [json.loads(text)]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
        elif isinstance(node, str):
            values.append(node)
    return values
