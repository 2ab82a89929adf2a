"""TLS to the backend for security profiles 2 and 3 (OCPP 1.6 Security Whitepaper, edition 3):
the one function that builds the client's TLS context, the check of the station's key file,
and what a failed handshake means as a security event.

- Trust: only the installed CentralSystemRootCertificates (``[security]
  certificates_dir``/central_system/*.pem), never the system store: a charger pins its backend.
  The server's certificate chain and its host name are verified.
- TLS 1.2 or later. For TLS 1.2 only the whitepaper's suites are offered
  (ECDHE-ECDSA and RSA key exchange with AES-GCM); TLS 1.3 suites are OpenSSL's, all AEAD.
- Profile 3 presents the station's certificate chain and key (``charge_point/cert.pem``,
  ``key.pem``); a key file readable by anyone but its owner is refused.
"""

from __future__ import annotations

import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from chargerfw.logs import get_logger
from chargerfw.ocpp.security_log import (
    CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE,
    INVALID_CENTRAL_SYSTEM_CERTIFICATE,
    INVALID_TLS_CIPHER_SUITE,
    INVALID_TLS_VERSION,
)
from chargerfw.x509chain import ROOT_SUFFIXES

if TYPE_CHECKING:
    import ssl

log = get_logger(__name__)

# TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
# TLS_RSA_WITH_AES_128_GCM_SHA256, TLS_RSA_WITH_AES_256_GCM_SHA384 in OpenSSL's names.
WHITEPAPER_TLS12_CIPHERS = ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                            "AES128-GCM-SHA256", "AES256-GCM-SHA384")
PROVISIONED_ROOT = "provisioned-ca.pem"  # where [ocpp] ca_file is installed


class TlsSetupError(ValueError):
    """The TLS context cannot be built: no root installed, a missing or exposed key, a
    certificate file that is not PEM."""


# OpenSSL's verify codes of a certificate for another name (X509_V_ERR_HOSTNAME_MISMATCH,
# X509_V_ERR_IP_ADDRESS_MISMATCH).
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64


def installed_roots(roots_dir: Path) -> list[Path]:
    """The CentralSystemRootCertificate files, in name order (a replaced root kept as the
    fallback included: it is still trusted until a connection is verified without it)."""
    try:
        return sorted(p for p in roots_dir.iterdir() if p.suffix in ROOT_SUFFIXES
                      and not p.name.startswith(".") and p.is_file())
    except FileNotFoundError:
        return []


def check_private_key_file(path: Path) -> None:
    """Refuse a key file that is missing or that anyone but its owner may read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise TlsSetupError(f"{path}: no such key file (security profile 3 needs the "
                            "station's key; see docs/security.md)") from None
    if stat.S_IMODE(mode) & 0o077:
        raise TlsSetupError(
            f"{path}: mode {stat.S_IMODE(mode):04o} lets others than its owner at the private "
            f"key; make it readable by the service user only (chmod 0600 {path})")


def tls_context(profile: int, roots_dir: Path, certificate: Path | None = None,
                key: Path | None = None) -> ssl.SSLContext:
    """The client context for security profile 2 (server verified) or 3 (and our own
    certificate and key presented)."""
    import ssl

    if profile not in (2, 3):
        raise TlsSetupError(f"security profile {profile} does not use TLS")
    roots = installed_roots(roots_dir)
    if not roots:
        raise TlsSetupError(
            f"security profile {profile} needs a CentralSystemRootCertificate: none is "
            f"installed in {roots_dir} (InstallCertificate, or [ocpp] ca_file)")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies chain and host name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(":".join(WHITEPAPER_TLS12_CIPHERS))
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    for root in roots:
        try:
            context.load_verify_locations(cafile=str(root))
        except ssl.SSLError as exc:
            raise TlsSetupError(f"{root}: not a PEM certificate ({exc.reason})") from None
    if profile == 3:
        if certificate is None or key is None:
            raise TlsSetupError("security profile 3 needs the station's certificate and key")
        if not certificate.is_file():
            raise TlsSetupError(f"{certificate}: no such certificate (security profile 3 needs "
                                "the station's certificate; see SignCertificate)")
        check_private_key_file(key)
        try:
            context.load_cert_chain(str(certificate), str(key))
        except ssl.SSLError as exc:
            raise TlsSetupError(
                f"{certificate} / {key}: not a matching PEM certificate and key "
                f"({exc.reason})") from None
    return context


def handshake_security_event(exc: BaseException) -> tuple[str, str] | None:
    """The security event a failed TLS handshake is, as (event type, tech info), or None
    when the failure is not one of the server's certificate or TLS offer."""
    import ssl

    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code in (_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH):
            # A good certificate, but not for the backend we asked for: it failed to
            # authenticate as itself.
            return CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE, str(exc.verify_message or exc)[:255]
        return INVALID_CENTRAL_SYSTEM_CERTIFICATE, str(exc.verify_message or exc)[:255]
    if not isinstance(exc, ssl.SSLError):
        return None
    reason = (exc.reason or "").upper()
    if reason in ("UNSUPPORTED_PROTOCOL", "TLSV1_ALERT_PROTOCOL_VERSION",
                  "WRONG_SSL_VERSION", "UNKNOWN_PROTOCOL", "WRONG_VERSION_NUMBER"):
        return INVALID_TLS_VERSION, f"the server offers no TLS 1.2 or later ({reason})"
    if reason in ("SSLV3_ALERT_HANDSHAKE_FAILURE", "NO_CIPHERS_AVAILABLE",
                  "NO_SHARED_CIPHER", "WRONG_CIPHER_RETURNED", "TLSV1_ALERT_INSUFFICIENT_SECURITY"):
        return INVALID_TLS_CIPHER_SUITE, f"no cipher suite in common with the server ({reason})"
    return None


class SecurityEventLimiter:
    """Passes each event type on at most once per ``interval_s``: a station that cannot
    reach its backend retries for days, and the security log must not fill with one failure.
    The first event passes at once; what was held back is counted in the next one."""

    def __init__(self, record: Callable[[str, str], None], interval_s: float = 600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._record = record
        self._interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def __call__(self, event_type: str, tech_info: str) -> None:
        """Record the event unless one of its type was recorded less than ``interval_s``
        ago."""
        now = self._clock()
        last = self._last.get(event_type)
        if last is not None and now - last < self._interval_s:
            self._held[event_type] = self._held.get(event_type, 0) + 1
            return
        held = self._held.pop(event_type, 0)
        if held:
            tech_info = f"{tech_info} (and {held} more since the last report)"
        self._last[event_type] = now
        self._record(event_type, tech_info[:255])


def provision_ca_file(ca_file: Path, roots_dir: Path) -> bool:
    """Install ``[ocpp] ca_file`` as a CentralSystemRootCertificate when none is installed
    (a station provisioned before the certificate store, or by its installer): the store is
    the only trust the link has. True if it was installed; a file that is not a PEM
    certificate is a :class:`TlsSetupError`, a store that cannot be written is logged."""
    import ssl

    if installed_roots(roots_dir):
        return False
    try:
        text = ca_file.read_text(encoding="ascii")
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cadata=text)
    except (OSError, UnicodeDecodeError, ssl.SSLError) as exc:
        raise TlsSetupError(f"[ocpp] ca_file {ca_file}: not a readable PEM certificate "
                            f"({type(exc).__name__})") from None
    from chargerfw.durable import write_atomically

    try:
        roots_dir.mkdir(parents=True, exist_ok=True)
        write_atomically(roots_dir / PROVISIONED_ROOT, text.encode(), 0o644)
    except OSError as exc:
        log.error("ocpp.ca_file_not_installed", ca_file=str(ca_file), roots=str(roots_dir),
                  error=f"{type(exc).__name__}: {exc}")
        return False
    log.info("ocpp.ca_file_installed", ca_file=str(ca_file),
             root=str(roots_dir / PROVISIONED_ROOT))
    return True
