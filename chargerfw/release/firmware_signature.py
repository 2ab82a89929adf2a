"""The signed-firmware check of the OCPP 1.6 Security Whitepaper (SignedUpdateFirmware):
the manufacturer's signing certificate must chain to an installed ManufacturerRootCertificate
and the signature must be valid over the downloaded file.

Pure: certificates, signature and file in, a :class:`SignedFirmware` or a
:class:`FirmwareSignatureError` out. Each error carries the SignedFirmwareStatusNotification
status it maps to (``InvalidCertificate`` or ``InvalidSignature``).

The chain is checked by :func:`chargerfw.x509chain.chain_to_root` (each issuer's signature
verified directly: validity, names, CA and keyUsage of every issuer, up to the root). The
signing certificate, when it carries extendedKeyUsage, must allow codeSigning.

Signature algorithms: the whitepaper's certificate properties name RSA-PSS or ECDSA with SHA-256
for signing; RSA PKCS#1 v1.5 with SHA-256 is accepted as well, since manufacturers sign with it
(``openssl dgst -sha256 -sign``). The hash is always SHA-256.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from chargerfw import x509chain
from chargerfw.code_signature import UnsupportedSigningKey, file_sha256, signature_algorithm
from chargerfw.x509chain import ROOT_SUFFIXES

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


def _name(cert: x509.Certificate) -> str:
    return x509chain.subject_name(cert)


def _check_code_signing(cert: x509.Certificate) -> None:
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if ExtendedKeyUsageOID.CODE_SIGNING not in usage:
        raise NotCodeSigning(f"{_name(cert)} is not for code signing (extendedKeyUsage)")


_CHAIN_ERRORS: dict[type[x509chain.CertificateChainError], type[FirmwareSignatureError]] = {
    x509chain.CertificateExpired: CertificateExpired,
    x509chain.CertificateNotYetValid: CertificateNotYetValid,
    x509chain.UntrustedCertificate: UntrustedCertificate,
}


def _chain_to_root(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                   roots: list[x509.Certificate], now: datetime) -> x509.Certificate:
    """The root ``leaf`` chains to, checking validity and signatures on the way."""
    try:
        return x509chain.chain_to_root(leaf, intermediates, roots, now,
                                       roots_name="ManufacturerRootCertificate")
    except x509chain.CertificateChainError as exc:
        raise _CHAIN_ERRORS[type(exc)](str(exc)) from None


def _verify_signature(cert: x509.Certificate, signature: bytes, digest: bytes) -> str:
    try:
        algorithm = signature_algorithm(cert, signature, digest)
    except UnsupportedSigningKey as exc:
        raise UnsupportedKey(f"{_name(cert)} has {exc}") from None
    if algorithm is None:
        raise SignatureMismatch("the signature (ECDSA, or RSA PKCS#1 v1.5 or PSS, over SHA-256) "
                                "does not match the file")
    return algorithm


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
    digest = file_sha256(firmware)
    algorithm = _verify_signature(leaf, raw_signature, digest)
    return SignedFirmware(sha256=digest.hex(), signer=_name(leaf), root=_name(root),
                          algorithm=algorithm)
