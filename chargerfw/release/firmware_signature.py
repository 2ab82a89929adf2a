"""The signed-firmware check of the OCPP 1.6 Security Whitepaper (SignedUpdateFirmware):
the manufacturer's signing certificate must chain to an installed ManufacturerRootCertificate
and the signature must be valid over the downloaded file.

Pure: certificates, signature and file in, a :class:`SignedFirmware` or a
:class:`FirmwareSignatureError` out. Each error carries the SignedFirmwareStatusNotification
status it maps to (``InvalidCertificate`` or ``InvalidSignature``).

The chain is checked by verifying each issuer's signature directly
(``Certificate.verify_directly_issued_by``) rather than with ``cryptography.x509.verification``:
that verifier applies the Web PKI profile (server or client names, required extensions), which
manufacturer code-signing hierarchies do not follow. What is checked, for every certificate up
to and including the root: the validity period at ``now``; the issuer's name and signature; an
issuer is a CA (basicConstraints) allowed to sign certificates (keyUsage, where present). The
signing certificate, when it carries extendedKeyUsage, must allow codeSigning.

Signature algorithms: the whitepaper's certificate properties name RSA-PSS or ECDSA with SHA-256
for signing; RSA PKCS#1 v1.5 with SHA-256 is accepted as well, since manufacturers sign with it
(``openssl dgst -sha256 -sign``). The hash is always SHA-256.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtendedKeyUsageOID

ROOT_SUFFIXES = (".pem", ".crt")
MAX_CHAIN_LENGTH = 5  # signing certificate, intermediates and root
_READ_CHUNK = 1 << 20

INVALID_CERTIFICATE = "InvalidCertificate"
INVALID_SIGNATURE = "InvalidSignature"


class FirmwareSignatureError(Exception):
    """The firmware may not be installed; ``status`` is the notification status it maps to."""

    status = INVALID_CERTIFICATE


class BadCertificate(FirmwareSignatureError):
    """The signing certificate is not PEM, or not a certificate."""


class NoManufacturerRoots(FirmwareSignatureError):
    """No ManufacturerRootCertificate is installed (or none can be read)."""


class CertificateExpired(FirmwareSignatureError):
    """A certificate of the chain is past its notValidAfter."""


class CertificateNotYetValid(FirmwareSignatureError):
    """A certificate of the chain is before its notValidBefore."""


class UntrustedCertificate(FirmwareSignatureError):
    """The signing certificate does not chain to an installed root."""


class NotCodeSigning(FirmwareSignatureError):
    """The signing certificate's extendedKeyUsage does not include codeSigning."""


class BadSignatureEncoding(FirmwareSignatureError):
    """The signature is not base64."""

    status = INVALID_SIGNATURE


class SignatureMismatch(FirmwareSignatureError):
    """The signature is not valid over the file with the signing certificate's key."""

    status = INVALID_SIGNATURE


class UnsupportedKey(FirmwareSignatureError):
    """The signing certificate's key is neither RSA nor EC."""


@dataclass(frozen=True)
class SignedFirmware:
    """A firmware file whose signature checked out."""

    sha256: str  # hex digest of the file
    signer: str  # the signing certificate's subject, RFC 4514
    root: str  # the root it chains to, RFC 4514
    algorithm: str  # "RSA-PKCS1v15-SHA256", "RSA-PSS-SHA256" or "ECDSA-SHA256"


def load_manufacturer_roots(directory: Path) -> list[x509.Certificate]:
    """Every certificate in the PEM files (``*.pem``, ``*.crt``) of ``directory`` (the
    station's ``[security]`` manufacturer roots). A file that
    is not PEM is skipped: one bad file must not distrust the others; none at all raises
    :class:`NoManufacturerRoots`."""
    roots: list[x509.Certificate] = []
    try:
        files = sorted(p for p in directory.iterdir() if p.suffix in ROOT_SUFFIXES)
    except OSError as exc:
        raise NoManufacturerRoots(f"cannot read {directory}: {exc.strerror or exc}") from exc
    for path in files:
        try:
            roots.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError):
            continue
    if not roots:
        raise NoManufacturerRoots(f"no ManufacturerRootCertificate in {directory}")
    return roots


def _file_digest(firmware: bytes | Path) -> bytes:
    if isinstance(firmware, bytes):
        return hashlib.sha256(firmware).digest()
    digest = hashlib.sha256()
    with firmware.open("rb") as stream:
        while chunk := stream.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.digest()


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string()


def _check_validity(cert: x509.Certificate, now: datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{_name(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise CertificateExpired(
            f"{_name(cert)} expired at {cert.not_valid_after_utc.isoformat()}")


def _may_issue(issuer: x509.Certificate) -> bool:
    try:
        if not issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return issuer.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return True


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, CryptoInvalidSignature):
        return False
    return True


def _check_code_signing(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise NotCodeSigning(f"{_name(cert)} is not for code signing (extendedKeyUsage)")


def _chain_to_root(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                   roots: list[x509.Certificate], now: datetime) -> x509.Certificate:
    """The root ``leaf`` chains to, checking validity and signatures on the way."""
    current = leaf
    for _ in range(MAX_CHAIN_LENGTH):
        _check_validity(current, now)
        for root in roots:
            if _may_issue(root) and _issued_by(current, root):
                _check_validity(root, now)
                return root
        issuer = next((c for c in intermediates
                       if c is not current and _may_issue(c) and _issued_by(current, c)), None)
        if issuer is None:
            break
        current = issuer
    raise UntrustedCertificate(
        f"{_name(leaf)} (issuer {leaf.issuer.rfc4514_string()}) does not chain to an "
        "installed ManufacturerRootCertificate")


def _verify_signature(cert: x509.Certificate, signature: bytes, digest: bytes) -> str:
    key = cert.public_key()
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePublicKey):
        try:
            key.verify(signature, digest, ec.ECDSA(prehashed))
        except CryptoInvalidSignature:
            raise SignatureMismatch("the ECDSA-SHA256 signature does not match the file") from None
        return "ECDSA-SHA256"
    if isinstance(key, rsa.RSAPublicKey):
        with_pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                               salt_length=padding.PSS.AUTO)
        for name, scheme in (("RSA-PKCS1v15-SHA256", padding.PKCS1v15()),
                             ("RSA-PSS-SHA256", with_pss)):
            try:
                key.verify(signature, digest, scheme, prehashed)
            except CryptoInvalidSignature:
                continue
            return name
        raise SignatureMismatch("the RSA-SHA256 signature (PKCS#1 v1.5 or PSS) does not match "
                                "the file")
    raise UnsupportedKey(f"{_name(cert)} has a {type(key).__name__}; RSA or EC is required")


def check_signing_certificate(signing_certificate: str, roots: list[x509.Certificate],
                              now: datetime | None = None,
                              ) -> tuple[x509.Certificate, x509.Certificate]:
    """Check SignedUpdateFirmware's ``signingCertificate`` alone (as the request arrives,
    before any download): (the signing certificate, the root it chains to). Raises a
    :class:`FirmwareSignatureError` (status InvalidCertificate)."""
    now = datetime.now(UTC) if now is None else now
    if not roots:
        raise NoManufacturerRoots("no ManufacturerRootCertificate is installed")
    try:
        chain = x509.load_pem_x509_certificates(signing_certificate.encode())
    except ValueError as exc:
        raise BadCertificate(f"the signing certificate is not a PEM certificate: {exc}") from None
    leaf, intermediates = chain[0], chain[1:]
    root = _chain_to_root(leaf, intermediates, roots, now)
    _check_code_signing(leaf)
    return leaf, root


def verify_signed_firmware(signing_certificate: str, signature: str, firmware: bytes | Path,
                           roots: list[x509.Certificate], now: datetime | None = None,
                           ) -> SignedFirmware:
    """Check SignedUpdateFirmware's ``signingCertificate`` (PEM; intermediates may follow the
    signing certificate) against ``roots`` and its base64 ``signature`` over ``firmware``
    (the file's bytes or its path). Raises a :class:`FirmwareSignatureError`."""
    leaf, root = check_signing_certificate(signing_certificate, roots, now)
    try:
        raw_signature = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadSignatureEncoding(f"the signature is not base64: {exc}") from None
    if not raw_signature:
        raise BadSignatureEncoding("the signature is empty")
    digest = _file_digest(firmware)
    algorithm = _verify_signature(leaf, raw_signature, digest)
    return SignedFirmware(sha256=digest.hex(), signer=_name(leaf), root=_name(root),
                          algorithm=algorithm)
