"""The signature over a firmware file that SignedUpdateFirmware carries, checked the same way by
the station that installs the file and the backend that publishes it: SHA-256 over the file,
signed with ECDSA, RSA PKCS#1 v1.5 or RSA-PSS by the signing certificate's key."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

PREHASHED = utils.Prehashed(hashes.SHA256())
_READ_CHUNK = 1 << 20


class UnsupportedSigningKey(ValueError):
    """The signing certificate's key is neither EC nor RSA."""


def file_sha256(firmware: bytes | Path) -> bytes:
    """The SHA-256 digest of the file (its bytes or its path, read in chunks)."""
    if isinstance(firmware, bytes):
        return hashlib.sha256(firmware).digest()
    digest = hashlib.sha256()
    with firmware.open("rb") as stream:
        while chunk := stream.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.digest()


def signature_algorithm(certificate: x509.Certificate, signature: bytes,
                        digest: bytes) -> str | None:
    """The algorithm ``signature`` over ``digest`` was made with by ``certificate``'s key
    ("ECDSA-SHA256", "RSA-PKCS1v15-SHA256" or "RSA-PSS-SHA256"), or None when it does not
    verify; :class:`UnsupportedSigningKey` for a key that is neither EC nor RSA."""
    key = certificate.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        try:
            key.verify(signature, digest, ec.ECDSA(PREHASHED))
        except InvalidSignature:
            return None
        return "ECDSA-SHA256"
    if isinstance(key, rsa.RSAPublicKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
        for name, scheme in (("RSA-PKCS1v15-SHA256", padding.PKCS1v15()),
                             ("RSA-PSS-SHA256", pss)):
            try:
                key.verify(signature, digest, scheme, PREHASHED)
            except InvalidSignature:
                continue
            return name
        return None
    raise UnsupportedSigningKey(f"a {type(key).__name__}; an EC or RSA key is needed")
