"""Checking an X.509 chain up to a set of trusted roots, by verifying each issuer's signature
directly (``Certificate.verify_directly_issued_by``) rather than with
``cryptography.x509.verification``: that verifier applies the Web PKI profile (server or
client names, required extensions), which manufacturer code-signing hierarchies and a CPO's
charge point hierarchy do not follow.

What :func:`chain_to_root` checks, for every certificate up to and including the root: the
validity period at ``now``; the issuer's name and signature; an issuer is a CA
(basicConstraints) allowed to sign certificates (keyUsage, where present).
"""

from __future__ import annotations

from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature

ROOT_SUFFIXES = (".pem", ".crt")  # the files of a directory of PEM roots
MAX_CHAIN_LENGTH = 5  # leaf, intermediates and root


class CertificateChainError(Exception):
    """A certificate does not chain to a trusted root; the message says where it broke."""


class CertificateExpired(CertificateChainError):
    """A certificate of the chain is past its notValidAfter."""


class CertificateNotYetValid(CertificateChainError):
    """A certificate of the chain is before its notValidBefore."""


class UntrustedCertificate(CertificateChainError):
    """The certificate does not chain to any of the trusted roots."""


def subject_name(cert: x509.Certificate) -> str:
    """The subject, RFC 4514."""
    return cert.subject.rfc4514_string()


def check_validity(cert: x509.Certificate, now: datetime) -> None:
    """Raise if ``now`` is outside ``cert``'s validity period."""
    if now < cert.not_valid_before_utc:
        raise CertificateNotYetValid(
            f"{subject_name(cert)} is not valid before {cert.not_valid_before_utc.isoformat()}")
    if now > cert.not_valid_after_utc:
        raise CertificateExpired(
            f"{subject_name(cert)} expired at {cert.not_valid_after_utc.isoformat()}")


def may_issue(issuer: x509.Certificate) -> bool:
    """A CA (basicConstraints) whose keyUsage, where present, allows signing certificates."""
    try:
        if not issuer.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
    except x509.ExtensionNotFound:
        return False
    try:
        return issuer.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    except x509.ExtensionNotFound:
        return True


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``cert``."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def is_self_signed(cert: x509.Certificate) -> bool:
    return issued_by(cert, cert)


def chain_to_root(leaf: x509.Certificate, intermediates: list[x509.Certificate],
                  roots: list[x509.Certificate], now: datetime, *,
                  roots_name: str) -> x509.Certificate:
    """The root ``leaf`` chains to (through ``intermediates``, in any order), checking
    validity and signatures on the way; ``roots_name`` names the roots in the refusal."""
    current = leaf
    for _ in range(MAX_CHAIN_LENGTH):
        check_validity(current, now)
        for root in roots:
            if may_issue(root) and issued_by(current, root):
                check_validity(root, now)
                return root
        issuer = next((c for c in intermediates
                       if c is not current and may_issue(c) and issued_by(current, c)), None)
        if issuer is None:
            break
        current = issuer
    raise UntrustedCertificate(
        f"{subject_name(leaf)} (issuer {leaf.issuer.rfc4514_string()}) does not chain to an "
        f"installed {roots_name}")
