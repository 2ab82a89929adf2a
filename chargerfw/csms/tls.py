"""TLS on the backend's ports: the one server context builder (TLS 1.2 or newer, the cipher
suites of the OCPP 1.6 security whitepaper), the certificate files checked before anything
listens, the charge point id a client certificate names, and the rule of when a port may be
served without TLS.

The OCPP port asks for a client certificate only when a client CA is given, and then as an
option: a security profile 2 charger (Basic auth) connects without one, a profile 3 charger
presents one signed by that CA (any other fails the handshake).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509

# TLS 1.2 suites (OpenSSL names). The whitepaper's: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
# and _256_GCM_SHA384 for an ECDSA certificate, TLS_RSA_WITH_AES_128_GCM_SHA256 and
# _256_GCM_SHA384 for an RSA one. With an RSA certificate the forward-secret ECDHE_RSA forms
# come first for clients that offer them. TLS 1.3 uses its own (all AEAD) suites.
WHITEPAPER_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
)


class TlsSetupError(Exception):
    """The backend cannot serve as configured (a bad certificate file, a plain port
    exposed without being allowed); the message says what to fix."""


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate chain (PEM, leaf first) and key, and the CA that signs
    chargers' client certificates (None: client certificates are not asked for)."""

    cert: Path
    key: Path
    client_ca: Path | None = None


def _load_certificates(path: Path, what: str) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TlsSetupError(f"cannot read the {what} {path}: {exc.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise TlsSetupError(f"the {what} {path} holds no PEM certificate") from None
    return certificates


def _check_validity(certificate: x509.Certificate, path: Path, what: str,
                    now: datetime) -> None:
    subject = certificate.subject.rfc4514_string()
    if certificate.not_valid_after_utc <= now:
        raise TlsSetupError(
            f"the {what} {path} ({subject}) expired on "
            f"{certificate.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; install a current one")
    if certificate.not_valid_before_utc > now:
        raise TlsSetupError(
            f"the {what} {path} ({subject}) is not valid before "
            f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; check the clock or the "
            f"certificate")


def check_certificate_files(files: TlsFiles, now: datetime | None = None) -> None:
    """Refuse a server certificate (or client CA) that is missing, unreadable, expired or
    not yet valid, with a message naming the file."""
    now = now or datetime.now(UTC)
    leaf = _load_certificates(files.cert, "server certificate")[0]
    _check_validity(leaf, files.cert, "server certificate", now)
    if files.client_ca is not None:
        for ca in _load_certificates(files.client_ca, "client CA"):
            _check_validity(ca, files.client_ca, "client CA", now)


def server_context(files: TlsFiles, *, client_certificates: bool = False) -> ssl.SSLContext:
    """A TLS server context: TLS 1.2+, the whitepaper's suites; with ``client_certificates``
    (and a client CA) a client certificate is asked for and, when sent, verified."""
    check_certificate_files(files)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(":".join(WHITEPAPER_CIPHERS))
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_COMPRESSION
    try:
        context.load_cert_chain(files.cert, files.key)
    except ssl.SSLError as exc:
        raise TlsSetupError(f"the key {files.key} does not fit the server certificate "
                            f"{files.cert} or is not a PEM key: {exc.reason}") from None
    except OSError as exc:
        raise TlsSetupError(f"cannot read the key {files.key}: {exc.strerror}") from None
    if client_certificates and files.client_ca is not None:
        context.load_verify_locations(cafile=files.client_ca)
        # Optional at the TLS level: profile 2 chargers come without one.
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def certificate_common_names(peercert: dict[str, Any] | None) -> list[str]:
    """The subject CNs of a verified peer certificate (``SSLObject.getpeercert()``); empty
    when the peer sent none."""
    if not peercert:
        return []
    return [value for rdn in peercert.get("subject", ()) for key, value in rdn
            if key == "commonName"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def plain_exposed_hosts(hosts: Iterable[str], *, tls: bool, allow_plain: bool
                        ) -> tuple[str, ...]:
    """The addresses other than loopback served without TLS.

    Plain ws/http is fine on loopback (``make sim``, tests, a reverse proxy on the same
    host); any other address needs TLS or an explicit ``allow_plain`` (raises otherwise).
    """
    if tls:
        return ()
    exposed = tuple(sorted({host for host in hosts if not is_loopback(host)}))
    if exposed and not allow_plain:
        raise TlsSetupError(
            f"refusing to serve plain ws/http on {', '.join(exposed)}: give --tls-cert and "
            f"--tls-key, bind 127.0.0.1, or say --allow-plain (credentials and charging data "
            f"then cross the network unencrypted)")
    return exposed
