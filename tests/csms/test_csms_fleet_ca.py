"""The fleet CA: CSRs checked and signed, certificates tracked and shown, security events
stored and listed, the certificate commands, and the security migration 1 -> 2 -> 3 against
a charger double that acts as a station."""

from __future__ import annotations

import asyncio
import contextlib
import json
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cert_factory import Issued, issue, server_certificate
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from csms_doubles import (
    CS_ROOT,
    ChargerSecurity,
    SimStation,
    add_test_charger,
    csms_running,
    hash_data_of,
    sim_charger,
    sim_station,
)

from chargerfw.cli import main as cli_main
from chargerfw.csms.charge_point_view import charge_points_view
from chargerfw.csms.fleet_ca import CA_KEY, CaError, CsrRefused, FleetCa, init_ca
from chargerfw.csms.operator_commands import OperatorCommandRunner
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.store import verify_password
from chargerfw.csms.tables import operator_commands
from chargerfw.csms.tls import TlsFiles


def csr(common_name: str, organization: str | None = None,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes)) \
        .sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def with_broken_signature(pem: str) -> str:
    """The same CSR with one bit of its signature flipped."""
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(
        serialization.Encoding.DER))
    der[-3] ^= 0x01
    request = x509.load_der_x509_csr(bytes(der))
    return request.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    init_ca(directory, common_name="Test fleet CA", organization="Test CPO")
    return directory


def ca_as_issued(directory: Path) -> Issued:
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Issued(key, x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes()))


# --- the CA itself ------------------------------------------------------------------------------

def test_a_new_ca_has_an_owner_only_key_and_refuses_to_be_made_twice(ca_dir: Path) -> None:
    assert stat.S_IMODE((ca_dir / CA_KEY).stat().st_mode) == 0o600
    ca = FleetCa.load(ca_dir)
    assert isinstance(ca.certificate.public_key(), ec.EllipticCurvePublicKey)
    assert ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    with pytest.raises(CaError, match="holds a CA already"):
        init_ca(ca_dir)


def test_an_existing_ca_is_taken_and_a_non_ca_refused(tmp_path: Path) -> None:
    root = issue("Operator root", ca=True, key=rsa.generate_private_key(65537, 2048))
    cert, key = root.write(tmp_path / "given", "root")
    init_ca(tmp_path / "ca", existing=(cert, key))
    assert FleetCa.load(tmp_path / "ca").certificate == root.cert
    leaf = issue("not a CA")
    cert, key = leaf.write(tmp_path / "given", "leaf")
    with pytest.raises(CaError, match="not a CA certificate"):
        init_ca(tmp_path / "ca2", existing=(cert, key))
    assert not (tmp_path / "ca2" / CA_KEY).exists()


def test_a_good_csr_is_signed_as_a_client_certificate_of_the_charger(ca_dir: Path) -> None:
    ca = FleetCa.load(ca_dir, cpo_name="Test CPO", validity=timedelta(days=30))
    request = ca.check_csr(csr("CP1", "Test CPO"), "CP1")
    issued = ca.sign(request, "CP1")
    cert = issued.certificate
    cert.verify_directly_issued_by(ca.certificate)
    assert cert.subject == request.subject
    assert cert.public_key() == request.public_key()
    assert cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert timedelta(days=29) < cert.not_valid_after_utc - datetime.now(UTC) <= \
        timedelta(days=30)
    # A self-signed CA is the root the charger holds: the chain is the certificate alone.
    assert x509.load_pem_x509_certificates(issued.chain_pem.encode()) == [cert]


def test_an_intermediate_ca_sends_itself_in_the_chain(tmp_path: Path) -> None:
    root = issue("Operator root", ca=True)
    intermediate = issue("Fleet CA", ca=True, issuer=root)
    cert, key = intermediate.write(tmp_path / "given", "fleet", chain=(root,))
    init_ca(tmp_path / "ca", existing=(cert, key))
    ca = FleetCa.load(tmp_path / "ca")
    issued = ca.sign(ca.check_csr(csr("CP1"), "CP1"), "CP1")
    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode())
    assert chain == [issued.certificate, intermediate.cert]


@pytest.mark.parametrize(("request_pem", "cpo_name", "reason"), [
    (csr("CP2", "Test CPO"), "Test CPO", "CN is CP2, not the charge point id 'CP1'"),
    (with_broken_signature(csr("CP1", "Test CPO")), "Test CPO", "signature does not match"),
    (csr("CP1", "Other CPO"), "Test CPO", "O is Other CPO, not the CpoName 'Test CPO'"),
    (csr("CP1"), "Test CPO", "O is missing"),
    (csr("CP1", key=rsa.generate_private_key(65537, 1024)), None, "1024 bits"),
    ("not a CSR", None, "not a PEM certificate request"),
])
def test_a_bad_csr_is_refused_with_its_reason(ca_dir: Path, request_pem: str,
                                              cpo_name: str | None, reason: str) -> None:
    ca = FleetCa.load(ca_dir, cpo_name=cpo_name)
    with pytest.raises(CsrRefused, match=reason):
        ca.check_csr(request_pem, "CP1")


def test_a_ca_key_others_may_read_is_refused(ca_dir: Path) -> None:
    (ca_dir / CA_KEY).chmod(0o640)
    with pytest.raises(CaError, match="chmod 600"):
        FleetCa.load(ca_dir)


# --- SignCertificate, CertificateSigned, security events on the running backend ----------------

async def wait_until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_a_signed_certificate_is_sent_tracked_shown_and_renewed(
        db: str, ca_dir: Path) -> None:
    async with csms_running(db, ca_dir=str(ca_dir), cpo_name="Test CPO") as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            charger.security.cpo_name = "Test CPO"
            assert await charger.sign_certificate(charger.security.csr("CP1")) == "Accepted"
            await wait_until(lambda: charger.security.chain is not None)
            first = x509.load_pem_x509_certificates(charger.security.chain.encode())[0]
            first.verify_directly_issued_by(FleetCa.load(ca_dir).certificate)
            await wait_until(lambda: csms.store.current_certificate("CP1") is not None)
            [view] = charge_points_view(csms.store, "CP1")
            assert view["certificate"]["serial"] == format(first.serial_number, "x")
            assert view["certificate"]["not_after"] == \
                first.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
            # Renewal: a new CSR from the same charger is signed again and becomes current.
            charger.answers["CertificateSigned"] = "Accepted"
            assert await charger.sign_certificate(charger.security.csr("CP1")) == "Accepted"
            await wait_until(lambda: len(csms.store.charger_certificates("CP1")) == 2
                             and all(r["status"] for r in
                                     csms.store.charger_certificates("CP1")))
            second = x509.load_pem_x509_certificates(charger.security.chain.encode())[0]
            assert second.serial_number != first.serial_number
            assert csms.store.current_certificate("CP1")["serial"] == \
                format(second.serial_number, "x")
            # One the charger refuses is kept with its answer and is not current.
            charger.answers["CertificateSigned"] = "Rejected"
            await charger.sign_certificate(charger.security.csr("CP1"))
            await wait_until(lambda: csms.store.charger_certificates("CP1")[0]["status"]
                             == "Rejected")
            assert csms.store.current_certificate("CP1")["serial"] == \
                format(second.serial_number, "x")
            # Each answer is a charger event too, newest first.
            await wait_until(lambda: len(csms.store.charge_point_event_history(
                "CP1", "CertificateSigned")) == 3)
            answers = csms.store.charge_point_event_history("CP1", "CertificateSigned")
            assert sorted(e["data"]["status"] for e in answers) == ["Accepted", "Accepted",
                                                                     "Rejected"]


async def test_a_refused_csr_is_rejected_with_a_stored_security_event(
        db: str, ca_dir: Path) -> None:
    async with csms_running(db, ca_dir=str(ca_dir), cpo_name="Test CPO") as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            answer = await charger.sign_certificate(
                charger.security.csr("CP1", common_name="CP9", organization="Test CPO"))
            assert answer == "Rejected"
            answer = await charger.sign_certificate(
                charger.security.csr("CP1", organization="Wrong CPO"))
            assert answer == "Rejected"
            await asyncio.sleep(0.2)
            assert "CertificateSigned" not in [a for a, _ in charger.received]
        assert csms.store.charger_certificates("CP1") == []
        events = csms.store.charge_point_event_history("CP1", "InvalidChargePointCertificate")
        assert [e["kind"] for e in events] == ["SecurityEvent", "SecurityEvent"]
        assert "Wrong CPO" in events[0]["data"]["detail"]
        assert "CN is CP9" in events[1]["data"]["detail"]


async def test_without_a_ca_sign_certificate_is_rejected(db: str) -> None:
    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            assert await charger.sign_certificate(charger.security.csr("CP1")) == "Rejected"


async def test_security_events_are_stored_and_listed_newest_first(db: str) -> None:
    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            await charger.security_event("StartupOfTheDevice", "booted")
            await charger.security_event("TamperDetectionActivated", "door open",
                                         datetime(2026, 3, 1, 10, 0, tzinfo=UTC))
            await charger.security_event("InvalidTLSVersion")
        result = await asyncio.to_thread(CliRunner().invoke, cli_main, [
            "csms", "cp", "events", "CP1", "--db", db, "--type", "SecurityEventNotification",
            "--json"])
        assert result.exit_code == 0, result.output
        events = json.loads(printed(result.output))
        assert [e["data"]["type"] for e in events] == [
            "InvalidTLSVersion", "TamperDetectionActivated", "StartupOfTheDevice"]
        assert events[1]["data"] == {"type": "TamperDetectionActivated",
                                     "timestamp": "2026-03-01T10:00:00Z",
                                     "techInfo": "door open"}
        result = await asyncio.to_thread(CliRunner().invoke, cli_main, [
            "csms", "cp", "events", "CP1", "--db", db, "--type", "TamperDetectionActivated"])
        assert result.exit_code == 0, result.output
        assert "door open" in result.output and "StartupOfTheDevice" not in result.output
        # Without a filter every event is listed.
        assert len(csms.store.charge_point_event_history("CP1")) == 3


async def test_a_bad_security_event_timestamp_stores_nothing(db: str) -> None:
    from ocpp.exceptions import FormationViolationError
    from ocpp.v16 import call

    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        async with sim_charger(csms, "CP1") as charger:
            with pytest.raises(FormationViolationError):  # OCPP 1.6's code for it
                await charger.call(call.SecurityEventNotification(
                    type="StartupOfTheDevice", timestamp="yesterday", tech_info=None),
                    suppress=False)
        assert csms.store.charge_point_event_history("CP1", "SecurityEventNotification") == []


# --- the certificate commands -------------------------------------------------------------------

async def test_each_certificate_command_reaches_the_charger(db: str, tmp_path: Path) -> None:
    root, other = issue("CS root", ca=True), issue("Second root", ca=True)
    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", None)
        runner = OperatorCommandRunner(csms.db, csms.ocpp)
        async with sim_charger(csms, "CP1") as charger:
            listed = await runner.run("CP1", "certificate_ids",
                                      {"certificate_type": CS_ROOT})
            assert (listed["status"], listed["ok"]) == ("NotFound", True)
            for pem in (root.pem, other.pem):
                installed = await runner.run("CP1", "install_certificate", {
                    "certificate_type": CS_ROOT, "certificate": pem})
                assert installed["ok"], installed
            listed = await runner.run("CP1", "certificate_ids", {"certificate_type": CS_ROOT})
            assert listed["certificate_hash_data"] == [hash_data_of(root.pem),
                                                       hash_data_of(other.pem)]
            deleted = await runner.run("CP1", "delete_certificate", hash_data_of(other.pem))
            assert (deleted["status"], deleted["ok"]) == ("Accepted", True)
            last = await runner.run("CP1", "delete_certificate", hash_data_of(root.pem))
            assert (last["status"], last["ok"]) == ("Failed", False)
            triggered = await runner.run("CP1", "extended_trigger",
                                         {"message": "SignChargePointCertificate"})
            assert triggered["ok"]
            await wait_until(lambda: charger.security.sign_answers)
            assert charger.security.sign_answers == ["Rejected"]  # this backend has no CA
            assert ("ExtendedTriggerMessage", {"requested_message": "SignChargePointCertificate",
                                               "connector_id": None}) in charger.received


@pytest.mark.parametrize(("command", "params", "problem"), [
    ("install_certificate", {"certificate_type": CS_ROOT, "certificate": "nope"},
     "one PEM certificate"),
    ("install_certificate", {"certificate_type": "Mine", "certificate": "x"},
     "certificate_type must be one of"),
    ("delete_certificate", {"hash_algorithm": "SHA256", "issuer_name_hash": "zz",
                            "issuer_key_hash": "00", "serial_number": "1"}, "hexadecimal"),
    ("certificate_ids", {}, "certificate_type must be one of"),
    ("extended_trigger", {"message": "DiagnosticsStatusNotification"}, "message must be one of"),
])
def test_bad_certificate_command_arguments_are_refused(command: str, params: dict[str, Any],
                                                       problem: str) -> None:
    from chargerfw.csms.operator_commands import InvalidCommand, check_params

    with pytest.raises(InvalidCommand, match=problem):
        check_params(command, params)


# --- the security migration ---------------------------------------------------------------------

async def migrating_backend(db: str, ca_dir: Path, tmp_path: Path) -> dict[str, Any]:
    """Settings for a backend whose TLS server certificate and chargers' certificates come
    from the fleet CA, which is also the CentralSystemRootCertificate chargers install."""
    server_cert, server_key = server_certificate(ca_as_issued(ca_dir)).write(
        tmp_path / "server", "server")
    return dict(ca_dir=str(ca_dir), cpo_name="Test CPO",
                tls=TlsFiles(server_cert, server_key, ca_dir / "ca.pem"), plain_ocpp_port=0)


def printed(output: str) -> str:
    """What the command printed, without the log lines of the backend running in this
    process (they land in the same captured stdout)."""
    return "\n".join(line for line in output.splitlines() if not line.startswith("level="))


async def run_cli(*args: str) -> Any:
    return await asyncio.to_thread(CliRunner().invoke, cli_main, list(args))


async def test_security_migrate_moves_a_charger_from_profile_1_through_2_to_3(
        db: str, ca_dir: Path, tmp_path: Path) -> None:
    settings = await migrating_backend(db, ca_dir, tmp_path)
    async with csms_running(db, **settings) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "first-password")
        assert csms.plain_ocpp_url is not None
        station = SimStation("CP1", csms.plain_ocpp_url, csms.ocpp_url,
                             tmp_path, ChargerSecurity(profile=1, password="first-password"))
        async with sim_station(csms, station):
            assert station.profiles == [1]
            result = await run_cli("csms", "cp", "security-migrate", "CP1", "--to-profile",
                                   "3", "--root", str(ca_dir / "ca.pem"), "--cpo-name",
                                   "Test CPO", "--db", db, "--wait", "20",
                                   "--reconnect-timeout", "20")
            assert result.exit_code == 0, result.output
            assert station.profiles == [1, 2, 2, 3] and station.fallbacks == 0
            assert csms.ocpp.connected["CP1"].security_profile == 3
            key = station.security.password
            assert key is not None and key != "first-password" and len(key) == 40
            stored = csms.store.get_charge_point("CP1")
            assert verify_password(key, stored["password_hash"])
            assert stored["security_profile"] == 3
            assert csms.store.current_certificate("CP1") is not None
            assert station.security.cpo_name == "Test CPO"
            lines = [line for line in result.output.splitlines() if ": ok: " in line]
            assert [line.split(": ")[1:3] for line in lines] == [
                ["profile 2", "install root"], ["profile 2", "check root"],
                ["profile 2", "raise profile"], ["profile 2", "authorization key"],
                ["profile 3", "cpo name"], ["profile 3", "certificate"],
                ["profile 3", "raise profile"]]
            assert key not in printed(result.output)
            # Done already: nothing is sent.
            again = await run_cli("csms", "cp", "security-migrate", "CP1", "--to-profile", "3",
                                  "--db", db, "--wait", "5")
            assert again.exit_code == 0 and "already" in again.output


@contextlib.asynccontextmanager
async def migrated_to_profile_2(db: str, ca_dir: Path, tmp_path: Path
                                ) -> AsyncIterator[tuple[RunningCsms, SimStation]]:
    """CP1, a station on profile 1 with a chosen password, migrated to profile 2."""
    settings = await migrating_backend(db, ca_dir, tmp_path)
    async with csms_running(db, **settings) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "first-password")
        assert csms.plain_ocpp_url is not None
        station = SimStation("CP1", csms.plain_ocpp_url, csms.ocpp_url,
                             tmp_path, ChargerSecurity(profile=1, password="first-password"))
        async with sim_station(csms, station):
            to_two = await run_cli("csms", "cp", "security-migrate", "CP1", "--to-profile",
                                   "2", "--root", str(ca_dir / "ca.pem"), "--db", db,
                                   "--wait", "20", "--reconnect-timeout", "20")
            assert to_two.exit_code == 0, to_two.output
            yield csms, station


async def test_a_refused_certificate_stops_the_migration_on_profile_2(
        db: str, ca_dir: Path, tmp_path: Path) -> None:
    async with migrated_to_profile_2(db, ca_dir, tmp_path) as (csms, station):
        assert station.charger is not None
        station.charger.answers["CertificateSigned"] = "Rejected"
        result = await run_cli("csms", "cp", "security-migrate", "CP1", "--to-profile",
                               "3", "--cpo-name", "Test CPO", "--db", db, "--wait", "20",
                               "--reconnect-timeout", "20")
        assert result.exit_code == 1
        assert "stopped before security profile 3" in result.output
        assert "answered CertificateSigned" in result.output and "Rejected" in result.output
        assert station.security.profile == 2
        assert csms.ocpp.connected["CP1"].security_profile == 2
        assert not any(a == "ChangeConfiguration" and p["key"] == "SecurityProfile"
                       and p["value"] == "3" for a, p in station.charger.received)


async def test_migration_from_profile_1_needs_the_root(db: str, ca_dir: Path,
                                                       tmp_path: Path) -> None:
    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "first-password")
        async with sim_charger(csms, "CP1", "first-password") as charger:
            result = await run_cli("csms", "cp", "security-migrate", "CP1", "--to-profile",
                                   "2", "--db", db, "--wait", "5")
            assert result.exit_code == 1 and "--root" in result.output
            assert [a for a, _ in charger.received] == []


def test_every_command_kinds_example_is_accepted() -> None:
    """The admin API's OpenAPI examples are requests that pass the checks."""
    from chargerfw.csms.operator_commands import KINDS, check_params

    for name, kind in KINDS.items():
        assert set(check_params(name, kind.example)) >= set(kind.example), name


# --- the AuthorizationKey rotation ------------------------------------------------------------

async def test_rotate_password_gives_a_charger_on_profile_2_a_generated_key(
        db: str, ca_dir: Path, tmp_path: Path) -> None:
    async with migrated_to_profile_2(db, ca_dir, tmp_path) as (csms, station):
        first_key = station.security.password
        assert first_key is not None
        assert csms.store.get_charge_point("CP1")["password_hash"].startswith("sha256$")

        result = await run_cli("csms", "cp", "rotate-password", "CP1", "--db", db,
                               "--wait", "20", "--reconnect-timeout", "20")
        assert result.exit_code == 0, result.output
        key = station.security.password
        assert key is not None and key != first_key and len(key) == 40
        stored = csms.store.get_charge_point("CP1")["password_hash"]
        assert stored.startswith("sha256$") and verify_password(key, stored)
        assert station.profiles == [1, 2, 2, 2] and station.fallbacks == 0
        # The key went from the backend to the charger only: not through the queue.
        with csms.store.engine.connect() as c:
            queued = json.dumps([dict(r) for r in c.execute(
                operator_commands.select()).mappings()], default=str)
        assert "authorization_key" in queued
        for secret in (first_key, key):
            assert secret not in queued and secret not in printed(result.output)

        # Refused by the charger: the password stays the one it has.
        assert station.charger is not None
        station.charger.answers["ChangeConfiguration"] = "Rejected"
        refused = await run_cli("csms", "cp", "rotate-password", "CP1", "--db", db,
                                "--wait", "20", "--reconnect-timeout", "20")
        assert refused.exit_code == 1 and "the password was not changed" in refused.output
        assert csms.store.get_charge_point("CP1")["password_hash"] == stored
        assert station.security.password == key


async def test_rotate_password_sends_no_key_over_plain_ws(db: str) -> None:
    async with csms_running(db) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "first-password")
        stored = csms.store.get_charge_point("CP1")["password_hash"]
        async with sim_charger(csms, "CP1", "first-password") as charger:
            result = await run_cli("csms", "cp", "rotate-password", "CP1", "--db", db,
                                   "--wait", "10", "--reconnect-timeout", "5")
            assert result.exit_code == 1
            assert "NotSecure" in result.output and "profile 1" in result.output
            assert [a for a, _ in charger.received if a == "ChangeConfiguration"] == []
        assert csms.store.get_charge_point("CP1")["password_hash"] == stored


async def test_a_key_the_charger_did_not_answer_for_is_not_kept(db: str) -> None:
    async with csms_running(db) as csms:  # the charger has 3 s to answer
        await csms.db(add_test_charger, csms.store, "CP1", "first-password")
        stored = csms.store.get_charge_point("CP1")["password_hash"]
        runner = OperatorCommandRunner(csms.db, csms.ocpp)
        async with sim_charger(csms, "CP1", "first-password") as charger:
            # As the store sees it, the charger came over TLS (the sim connects over ws).
            await csms.db(csms.store.record_security_profile, "CP1", 2)
            charger.answers["ChangeConfiguration"] = "NotSupported"
            outcome = await runner.run("CP1", "authorization_key", {})
            assert outcome["status"] == "NotSupported" and not outcome["ok"]
            assert csms.store.get_charge_point("CP1")["password_hash"] == stored
            charger.answers["ChangeConfiguration"] = "Accepted"
            charger.silent.add("ChangeConfiguration")
            outcome = await runner.run("CP1", "authorization_key", {})
            assert outcome["status"] == "NoAnswer"
            assert csms.store.get_charge_point("CP1")["password_hash"] == stored
            [(_, sent), _] = [(a, p) for a, p in charger.received if a == "ChangeConfiguration"]
            assert sent["key"] == "AuthorizationKey" and sent["value"] not in json.dumps(outcome)
