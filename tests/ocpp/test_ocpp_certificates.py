"""The certificate messages between the station's OCPP client and a test backend (in memory):
SignCertificate on ExtendedTriggerMessage and before expiry, CertificateSigned installed or
refused with InvalidChargePointCertificate, InstallCertificate / DeleteCertificate /
GetInstalledCertificateIds on the root stores."""

from __future__ import annotations

import asyncio
import itertools
import json
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cert_factory
import pytest
from cert_factory import Issued
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fakes import wait_until
from ocpp_support import memory_client
from ocpp_testcsms import TestCsms

from chargerfw.config.station import SecuritySection
from chargerfw.ocpp.certificates import CertificateStore, CertificateUse, hash_data
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.security_log import (
    INVALID_CHARGE_POINT_CERTIFICATE,
    SECURITY_RECONFIGURED,
)
from chargerfw.ocpp.v16.certificates import StationCertificates
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(30)

CS = CertificateUse.CENTRAL_SYSTEM_ROOT
MF = CertificateUse.MANUFACTURER_ROOT
TRIGGER = {"requestedMessage": "SignChargePointCertificate"}


class Station:
    """The station's certificate store with the operator CA as its CentralSystem root."""

    def __init__(self, tmp_path: Path) -> None:
        self.security = SecuritySection(certificates_dir=tmp_path / "certs")
        self.store = CertificateStore(self.security)
        self.ca = cert_factory.issue("Operator CA", ca=True)
        self.store.install_root(CS, self.ca.pem, store_max_length=10,
                                additional_root_check=False)

    def messages(self, answer_timeout_s: float = 0.5, renew_before_days: int = 30,
                 ) -> Callable[[Store, ConfigurationKeys], StationCertificates]:
        def build(store: Store, keys: ConfigurationKeys) -> StationCertificates:
            return StationCertificates(
                certificates=self.store, keys=keys, store=store, charge_point_id="CP1",
                renew_before_days=renew_before_days, answer_timeout_s=answer_timeout_s,
                attempts=3, check_interval_s=3600, offline_retry_s=0.05)
        return build


@pytest.fixture
def station(tmp_path: Path) -> Station:
    return Station(tmp_path)


_CALL_NUMBERS = itertools.count(1)


async def _ask(csms: TestCsms, uid: str, action: str, payload: dict[str, Any]) -> list[Any]:
    """The reply, under ``uid``; on the wire each call has an id of its own (a repeated one is
    refused as a replay)."""
    sent_as = f"{uid}-{next(_CALL_NUMBERS)}"
    reply = await csms.send_raw(json.dumps([2, sent_as, action, payload]), sent_as)
    return [reply[0], uid, *reply[2:]]


def _csrs(csms: TestCsms) -> list[x509.CertificateSigningRequest]:
    return [x509.load_pem_x509_csr(r.payload["csr"].encode())
            for r in csms.of("SignCertificate")]


def _events(store: Store, event_type: str) -> list[str | None]:
    return [e.tech_info for e in store.security_events() if e.type == event_type]


async def _triggered_csr(csms: TestCsms) -> x509.CertificateSigningRequest:
    assert (await _ask(csms, "t", "ExtendedTriggerMessage", TRIGGER))[2] == {
        "status": "Accepted"}
    await csms.wait_for(lambda: csms.of("SignCertificate"))
    return _csrs(csms)[-1]


def _signed(ca: Issued, csr: x509.CertificateSigningRequest, **kwargs: Any) -> str:
    csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    return cert_factory.sign_request(ca, csr_pem, **kwargs).pem


async def test_a_triggered_csr_is_signed_and_installed(tmp_path, station):
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={"CpoName": "Acme Charging"},
            certificates=station.messages()) as client:
        await wait_until(lambda: client.online)
        csr = await _triggered_csr(csms)
        assert csr.is_signature_valid
        assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP1"
        assert (csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
                == "Acme Charging")
        public = csr.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"

        chain = _signed(station.ca, csr)
        reply = await _ask(csms, "s", "CertificateSigned", {"certificateChain": chain})
        assert reply == [3, "s", {"status": "Accepted"}]

        security = station.security
        installed = x509.load_pem_x509_certificates(security.charge_point_certificate.read_bytes())
        assert installed == x509.load_pem_x509_certificates(chain.encode())
        assert stat.S_IMODE(security.charge_point_key.stat().st_mode) == 0o600
        key = serialization.load_pem_private_key(security.charge_point_key.read_bytes(), None)
        assert key.public_key() == public  # type: ignore[union-attr]
        assert not security.pending_charge_point_key.exists()
        assert any("charge point certificate installed" in (info or "")
                   for info in _events(client.store, SECURITY_RECONFIGURED))
        # Installed: no SignCertificate is sent again once the answer timeout has passed.
        await asyncio.sleep(1.2)
        assert len(csms.of("SignCertificate")) == 1


def _oversize(chain: str, ca: Issued) -> str:
    while len(chain) <= 8000:
        chain += ca.pem
    assert len(chain) <= 10000  # within the field's schema: the station's own limit refuses
    return chain


@pytest.mark.parametrize("make_chain, reason", [
    (lambda ca, csr: _signed(cert_factory.issue("Stranger CA", ca=True), csr),
     "does not chain"),
    (lambda ca, csr: cert_factory.client_certificate(ca, "CP1").pem, "not for the key"),
    (lambda ca, csr: _signed(ca, csr, common_name="CP2"), "CN"),
    (lambda ca, csr: _signed(ca, csr, not_before=datetime.now(UTC) - timedelta(days=30),
                             not_after=datetime.now(UTC) - timedelta(days=1)), "expired"),
    (lambda ca, csr: _oversize(_signed(ca, csr), ca), "CertificateSignedMaxChainSize"),
    (lambda ca, csr: "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n",
     "not a PEM"),
], ids=["other-ca", "wrong-key", "wrong-cn", "expired", "oversize", "garbage"])
async def test_a_bad_chain_is_rejected_with_the_security_event(tmp_path, station, make_chain,
                                                               reason):
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, certificates=station.messages(answer_timeout_s=5)) as client:
        await wait_until(lambda: client.online)
        csr = await _triggered_csr(csms)
        reply = await _ask(csms, "s", "CertificateSigned",
                           {"certificateChain": make_chain(station.ca, csr)})
        assert reply == [3, "s", {"status": "Rejected"}]
        events = _events(client.store, INVALID_CHARGE_POINT_CERTIFICATE)
        assert len(events) == 1 and reason in (events[0] or "")
        assert not station.security.charge_point_certificate.exists()
        assert station.security.pending_charge_point_key.exists()
        # The pending key still takes the right certificate.
        reply = await _ask(csms, "ok", "CertificateSigned",
                           {"certificateChain": _signed(station.ca, csr)})
        assert reply == [3, "ok", {"status": "Accepted"}]


async def test_roots_installed_listed_and_deleted(tmp_path, station):
    other = cert_factory.issue("Second CA", ca=True)
    ca = station.ca
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, certificates=station.messages()) as client:
        await wait_until(lambda: client.online)

        async def ids(kind: str) -> dict[str, Any]:
            reply = await _ask(csms, "g", "GetInstalledCertificateIds",
                               {"certificateType": kind})
            return dict(reply[2])

        def wire(issued: Issued) -> dict[str, str]:
            data = hash_data(issued.cert, issued.cert)
            return {"hashAlgorithm": "SHA256", "issuerNameHash": data.issuer_name_hash,
                    "issuerKeyHash": data.issuer_key_hash, "serialNumber": data.serial_number}

        assert await ids("CentralSystemRootCertificate") == {
            "status": "Accepted", "certificateHashData": [wire(ca)]}
        assert await ids("ManufacturerRootCertificate") == {"status": "NotFound"}

        async def install(kind: str, pem: str) -> str:
            reply = await _ask(csms, "i", "InstallCertificate",
                               {"certificateType": kind, "certificate": pem})
            return str(reply[2]["status"])

        assert await install("CentralSystemRootCertificate", other.pem) == "Accepted"
        assert await install("ManufacturerRootCertificate", other.pem) == "Accepted"
        leaf = cert_factory.client_certificate(ca, "CP1")
        assert await install("CentralSystemRootCertificate", leaf.pem) == "Rejected"
        listed = (await ids("CentralSystemRootCertificate"))["certificateHashData"]
        assert sorted(map(json.dumps, listed)) == sorted(map(json.dumps, [wire(ca), wire(other)]))

        async def delete(issued: Issued) -> str:
            reply = await _ask(csms, "d", "DeleteCertificate",
                               {"certificateHashData": wire(issued)})
            return str(reply[2]["status"])

        assert await delete(ca) == "Accepted"
        assert await delete(ca) == "NotFound"
        # ``other`` is now the last CentralSystem root and the last Manufacturer root.
        assert await delete(other) == "Failed"
        assert [r.cert for r in station.store.roots(CS)] == [other.cert]
        assert [r.cert for r in station.store.roots(MF)] == [other.cert]
        changes = _events(client.store, SECURITY_RECONFIGURED)
        assert len(changes) == 3  # two installs and one delete


async def test_a_certificate_near_expiry_is_renewed_and_resent_until_signed(tmp_path, station):
    station.store.signing_request("CP1", "")
    key = station.store.pending_key()
    assert key is not None
    soon = cert_factory.issue("CP1", issuer=station.ca, key=key,
                              not_after=datetime.now(UTC) + timedelta(days=10))
    station.store.install_charge_point_certificate(soon.pem, charge_point_id="CP1", cpo_name="",
                                                   max_chain_size=8000)
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, certificates=station.messages(answer_timeout_s=0.3)) as client:
        # At start, without any trigger: the certificate expires within 30 days.
        await csms.wait_for(lambda: len(csms.of("SignCertificate")) >= 2)
        first, second = _csrs(csms)[:2]
        assert first.public_key() == second.public_key()  # the same pending key, resent
        assert first.public_key() != soon.cert.public_key()
        reply = await _ask(csms, "s", "CertificateSigned",
                           {"certificateChain": _signed(station.ca, second)})
        assert reply == [3, "s", {"status": "Accepted"}]
        renewed = station.store.charge_point_chain()[0]
        assert renewed.not_valid_after_utc > datetime.now(UTC) + timedelta(days=300)
        assert client.online


async def test_a_station_without_a_certificate_store(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        assert (await _ask(csms, "t", "ExtendedTriggerMessage", TRIGGER))[2] == {
            "status": "Rejected"}
        reply = await _ask(csms, "i", "InstallCertificate",
                           {"certificateType": "CentralSystemRootCertificate",
                            "certificate": "x"})
        assert reply[:3] == [4, "i", "NotSupported"]



async def test_a_key_that_cannot_be_stored_sends_nothing_and_keeps_the_client(tmp_path, station):
    blocker = station.security.charge_point_generations_dir
    blocker.write_text("not a directory")  # where the pending key would go
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, certificates=station.messages(answer_timeout_s=0.2)) as client:
        await wait_until(lambda: client.online)
        assert (await _ask(csms, "t1", "ExtendedTriggerMessage", TRIGGER))[2] == {
            "status": "Accepted"}
        assert csms.of("SignCertificate") == []
        blocker.unlink()
        # The certificate task lives on: the next trigger sends a CSR.
        await _triggered_csr(csms)
        assert station.security.pending_charge_point_key.exists()
