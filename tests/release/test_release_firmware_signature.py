"""The signed-firmware check: certificates and signatures made here, each refusal its own error
mapped to InvalidCertificate or InvalidSignature."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cert_factory
import pytest
from cert_factory import Issued, PrivateKey
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from chargerfw.release.firmware_signature import (
    BadCertificate,
    BadSignatureEncoding,
    CertificateExpired,
    CertificateNotYetValid,
    FirmwareSignatureError,
    NoManufacturerRoots,
    NotCodeSigning,
    SignatureMismatch,
    UnsupportedKey,
    UntrustedCertificate,
    load_manufacturer_roots,
    verify_signed_firmware,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
FIRMWARE = b"chargerfw release 9.9.9\n" * 1000



def issue(common_name: str, *, issuer: Issued | None = None, ca: bool = False,
          key: PrivateKey | None = None, not_before: datetime = NOW - timedelta(days=30),
          not_after: datetime = NOW + timedelta(days=365),
          eku: list[x509.ObjectIdentifier] | None = None) -> Issued:
    """A certificate valid around :data:`NOW`."""
    return cert_factory.issue(common_name, issuer=issuer, ca=ca, key=key, not_before=not_before,
                              not_after=not_after, eku=eku, organization="Test Manufacturer")


def sign_ecdsa(key: PrivateKey, data: bytes) -> str:
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def sign_rsa(key: PrivateKey, data: bytes, scheme: padding.AsymmetricPadding) -> str:
    assert isinstance(key, rsa.RSAPrivateKey)
    return base64.b64encode(key.sign(data, scheme, hashes.SHA256())).decode()


ROOT = issue("Manufacturer Root", ca=True)
OTHER_ROOT = issue("Someone Else's Root", ca=True)
SIGNER = issue("Firmware Signing", issuer=ROOT, eku=[ExtendedKeyUsageOID.CODE_SIGNING])
RSA_SIGNER = issue("RSA Firmware Signing", issuer=ROOT,
                   key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def test_an_ecdsa_signature_by_a_certificate_of_the_root_is_accepted() -> None:
    result = verify_signed_firmware(SIGNER.pem, sign_ecdsa(SIGNER.key, FIRMWARE), FIRMWARE,
                                    [OTHER_ROOT.cert, ROOT.cert], now=NOW)
    assert result.algorithm == "ECDSA-SHA256"
    assert result.signer == SIGNER.cert.subject.rfc4514_string()
    assert result.root == ROOT.cert.subject.rfc4514_string()


@pytest.mark.parametrize(("scheme", "algorithm"), [(padding.PKCS1v15(), "RSA-PKCS1v15-SHA256"),
                                                   (PSS, "RSA-PSS-SHA256")])
def test_rsa_signatures_are_accepted(scheme: padding.AsymmetricPadding, algorithm: str,
                                     tmp_path: Path) -> None:
    firmware = tmp_path / "firmware.tar"
    firmware.write_bytes(FIRMWARE)  # a path is read in chunks, same result as the bytes
    result = verify_signed_firmware(RSA_SIGNER.pem, sign_rsa(RSA_SIGNER.key, FIRMWARE, scheme),
                                    firmware, [ROOT.cert], now=NOW)
    assert result.algorithm == algorithm


def test_an_intermediate_after_the_signing_certificate_completes_the_chain() -> None:
    intermediate = issue("Manufacturer Intermediate", issuer=ROOT, ca=True)
    leaf = issue("Firmware Signing 2", issuer=intermediate)
    result = verify_signed_firmware(leaf.pem + intermediate.pem, sign_ecdsa(leaf.key, FIRMWARE),
                                    FIRMWARE, [ROOT.cert], now=NOW)
    assert result.root == ROOT.cert.subject.rfc4514_string()
    with pytest.raises(UntrustedCertificate):  # without the intermediate: no chain
        verify_signed_firmware(leaf.pem, sign_ecdsa(leaf.key, FIRMWARE), FIRMWARE,
                               [ROOT.cert], now=NOW)


def _case(signer: Issued, signature: Callable[[Issued], str] | None = None,
          roots: list[Issued] | None = None, data: bytes = FIRMWARE,
          certificate: str | None = None, now: datetime = NOW,
          ) -> tuple[str, str, bytes, list[x509.Certificate], datetime]:
    sig = signature(signer) if signature else sign_ecdsa(signer.key, FIRMWARE)
    return (certificate if certificate is not None else signer.pem, sig, data,
            [r.cert for r in (roots if roots is not None else [ROOT])], now)


EXPIRED = issue("Old Signing", issuer=ROOT, not_before=NOW - timedelta(days=400),
                not_after=NOW - timedelta(days=1))
FUTURE = issue("Future Signing", issuer=ROOT, not_before=NOW + timedelta(days=1))
EXPIRED_ROOT = issue("Expired Root", ca=True, not_before=NOW - timedelta(days=900),
                     not_after=NOW - timedelta(seconds=1))
UNDER_EXPIRED_ROOT = issue("Signing Under Expired Root", issuer=EXPIRED_ROOT)
NOT_A_CA = issue("Not A CA", issuer=ROOT)
UNDER_LEAF = issue("Signed By A Leaf", issuer=NOT_A_CA)
TLS_ONLY = issue("TLS Client", issuer=ROOT, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
ED25519_SIGNER = issue("Ed25519 Signing", issuer=ROOT, key=ed25519.Ed25519PrivateKey.generate())
FULL_SIGNATURE = sign_ecdsa(SIGNER.key, FIRMWARE)

CASES = {
    "expired signing certificate": (_case(EXPIRED), CertificateExpired),
    "signing certificate not yet valid": (_case(FUTURE), CertificateNotYetValid),
    "valid certificate read after its end": (
        _case(SIGNER, now=NOW + timedelta(days=366)), CertificateExpired),
    "expired root": (_case(UNDER_EXPIRED_ROOT, roots=[EXPIRED_ROOT]), CertificateExpired),
    "another root": (_case(SIGNER, roots=[OTHER_ROOT]), UntrustedCertificate),
    "self-signed signing certificate": (_case(OTHER_ROOT), UntrustedCertificate),
    "issued by a certificate that is no CA": (
        _case(UNDER_LEAF, roots=[NOT_A_CA, ROOT]), UntrustedCertificate),
    "root name, other key": (
        _case(SIGNER, roots=[issue("Manufacturer Root", ca=True)]), UntrustedCertificate),
    "no code-signing usage": (_case(TLS_ONLY), NotCodeSigning),
    "no roots installed": (_case(SIGNER, roots=[]), NoManufacturerRoots),
    "certificate not PEM": (_case(SIGNER, certificate="not a certificate"), BadCertificate),
    "certificate PEM cut short": (_case(SIGNER, certificate=SIGNER.pem[:200]), BadCertificate),
    "signature by another key": (
        _case(SIGNER, signature=lambda s: sign_ecdsa(OTHER_ROOT.key, FIRMWARE)),
        SignatureMismatch),
    "file changed": (_case(SIGNER, data=FIRMWARE + b"x"), SignatureMismatch),
    "truncated base64": (_case(SIGNER, signature=lambda s: FULL_SIGNATURE[:-3]),
                         BadSignatureEncoding),
    "base64 cut at a group boundary": (
        _case(SIGNER, signature=lambda s: FULL_SIGNATURE[:40]), SignatureMismatch),
    "not base64": (_case(SIGNER, signature=lambda s: "***"), BadSignatureEncoding),
    "empty signature": (_case(SIGNER, signature=lambda s: ""), BadSignatureEncoding),
    "RSA signature, other padding": (
        _case(RSA_SIGNER, signature=lambda s: sign_rsa(s.key, FIRMWARE + b"!", PSS)),
        SignatureMismatch),
    "Ed25519 key": (
        _case(ED25519_SIGNER, signature=lambda s: FULL_SIGNATURE), UnsupportedKey),
}
INVALID_SIGNATURE_ERRORS = (BadSignatureEncoding, SignatureMismatch)


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_refusals(case: str) -> None:
    (certificate, signature, data, roots, now), error = CASES[case]
    with pytest.raises(error) as raised:
        verify_signed_firmware(certificate, signature, data, roots, now=now)
    expected = ("InvalidSignature" if issubclass(error, INVALID_SIGNATURE_ERRORS)
                else "InvalidCertificate")
    assert raised.value.status == expected
    assert str(raised.value)


def test_roots_are_read_from_the_pem_files_of_the_directory(tmp_path: Path) -> None:
    (tmp_path / "a.pem").write_text(ROOT.pem + OTHER_ROOT.pem)
    (tmp_path / "b.crt").write_text("garbage, skipped")
    (tmp_path / "c.txt").write_text(SIGNER.pem)  # not a root file by its name
    roots = load_manufacturer_roots(tmp_path)
    assert roots == [ROOT.cert, OTHER_ROOT.cert]


@pytest.mark.parametrize("content", [None, "garbage only"])
def test_no_readable_root_is_its_own_error(tmp_path: Path, content: str | None) -> None:
    if content is not None:
        (tmp_path / "root.pem").write_text(content)
    with pytest.raises(NoManufacturerRoots) as raised:
        load_manufacturer_roots(tmp_path)
    assert raised.value.status == "InvalidCertificate"
    with pytest.raises(NoManufacturerRoots):
        load_manufacturer_roots(tmp_path / "missing")


def test_every_refusal_is_a_firmware_signature_error() -> None:
    assert all(issubclass(error, FirmwareSignatureError) for _, error in CASES.values())
