"""A published release's signature for SignedUpdateFirmware (OCPP 1.6 Security Whitepaper): the
manufacturer's signing certificate (PEM) and the base64 signature over the release file, made
here with the manufacturer's key or given as made elsewhere.

The backend cannot know which ManufacturerRootCertificates a charger trusts, so what it checks
is what it can: the certificate is PEM, a given key belongs to it, and the signature is valid
over the file with its public key (a signature that could never verify is refused at
publishing, not found out by every charger). The charger checks the chain.

Signing: ECDSA with SHA-256 for an EC key, RSA-PSS with SHA-256 for an RSA key (the
whitepaper's algorithms); RSA PKCS#1 v1.5 signatures made elsewhere are accepted too, as the
chargers accept them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from chargerfw.code_signature import (
    PREHASHED,
    UnsupportedSigningKey,
    file_sha256,
    signature_algorithm,
)

# SignedUpdateFirmware.req's limits (FirmwareType: signingCertificate string[0..5500],
# signature string[0..800]).
CERTIFICATE_MAX = 5500
SIGNATURE_MAX = 800
_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


class SigningRefused(ValueError):
    """A signing certificate, key or signature that cannot go with the release."""


@dataclass(frozen=True)
class ReleaseSignature:
    signing_certificate: str  # PEM, the signing certificate first (intermediates may follow)
    signature: str  # base64


def _certificate(pem: str) -> x509.Certificate:
    if len(pem) > CERTIFICATE_MAX:
        raise SigningRefused(f"the signing certificate is {len(pem)} characters; "
                             f"SignedUpdateFirmware carries at most {CERTIFICATE_MAX}")
    try:
        return x509.load_pem_x509_certificates(pem.encode())[0]
    except ValueError as exc:
        raise SigningRefused(f"the signing certificate is not a PEM certificate: {exc}"
                             ) from None


def _sign(key_pem: bytes, digest: bytes) -> bytes:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningRefused(f"the signing key is not an unencrypted PEM private key: {exc}"
                             ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(digest, ec.ECDSA(PREHASHED))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(digest, _PSS, PREHASHED)
    raise SigningRefused(f"the signing key is a {type(key).__name__}; an EC or RSA key is "
                         "needed")


def _verifies(certificate: x509.Certificate, signature: bytes, digest: bytes) -> bool:
    try:
        return signature_algorithm(certificate, signature, digest) is not None
    except UnsupportedSigningKey:
        raise SigningRefused(f"the signing certificate has {type(certificate.public_key()).__name__}"
                             "; an EC or RSA key is needed") from None


def release_signature(release: Path, signing_certificate: str, *,
                      signature: str | None = None,
                      key_pem: bytes | None = None) -> ReleaseSignature:
    """The signature of ``release`` by the certificate's key: made with ``key_pem`` (which
    must be the certificate's), or ``signature`` (base64) checked. Raises SigningRefused."""
    if (signature is None) == (key_pem is None):
        raise SigningRefused("give either the signature or the key to sign with")
    certificate = _certificate(signing_certificate)
    digest = file_sha256(release)
    if key_pem is not None:
        raw = _sign(key_pem, digest)
        if not _verifies(certificate, raw, digest):
            raise SigningRefused("the signing key does not belong to the signing certificate "
                                 f"({certificate.subject.rfc4514_string()})")
        encoded = base64.b64encode(raw).decode()
    else:
        assert signature is not None
        encoded = "".join(signature.split())
        try:
            raw = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SigningRefused(f"the signature is not base64: {exc}") from None
        if not raw or not _verifies(certificate, raw, digest):
            raise SigningRefused(f"the signature is not valid over {release.name} with the "
                                 f"key of {certificate.subject.rfc4514_string()}")
    if len(encoded) > SIGNATURE_MAX:
        raise SigningRefused(f"the signature is {len(encoded)} characters; "
                             f"SignedUpdateFirmware carries at most {SIGNATURE_MAX}")
    return ReleaseSignature(signing_certificate.strip() + "\n", encoded)
