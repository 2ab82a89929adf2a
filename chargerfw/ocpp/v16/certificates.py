"""The certificate messages of the OCPP 1.6 Security Whitepaper on the station: the backend's
InstallCertificate, DeleteCertificate, GetInstalledCertificateIds and CertificateSigned, and
the station's SignCertificate (on ExtendedTriggerMessage SignChargePointCertificate and before
its certificate expires), over :class:`~chargerfw.ocpp.certificates.CertificateStore`.

Renewal: at start and then every ``check_interval_s`` (a day) the station's certificate is
checked; when it expires within ``renew_before`` a SignCertificate goes out. When no
CertificateSigned is installed within ``answer_timeout_s`` of an Accepted SignCertificate (or
the backend answered Rejected or failed), it is sent again, ``attempts`` times in all; after
that the next daily check starts over. Roots about to expire are logged and recorded in the
security log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from ocpp.v16 import call

from chargerfw.logs import get_logger
from chargerfw.ocpp import certificates as store_rules
from chargerfw.ocpp.certificates import (
    CertificateError,
    CertificateHashData,
    CertificateNotFound,
    CertificateStore,
    CertificateUse,
    ChargePointCertificateRefused,
)
from chargerfw.ocpp.config_keys import ConfigurationKeys
from chargerfw.ocpp.security_log import (
    INVALID_CHARGE_POINT_CERTIFICATE,
    SECURITY_RECONFIGURED,
    record_security_event,
)
from chargerfw.store import Store

log = get_logger(__name__)

# Sends one CALL on the current link: the answer, or None while not registered.
SendNow = Callable[[Any], Awaitable[Any]]

DAY_S = 86400.0
ANSWER_TIMEOUT_S = 3600.0  # an Accepted SignCertificate waits this long for CertificateSigned
ATTEMPTS = 3
OFFLINE_RETRY_S = 30.0
# Roots (CentralSystem and Manufacturer) expiring within this are reported every day, as a
# security log entry of this type (the whitepaper's list has none for it).
ROOT_WARNING = timedelta(days=90)
ROOT_CERTIFICATE_EXPIRING = "RootCertificateExpiring"
NO_CSR = "NoCsr"  # the pending key could not be stored: an attempt, nothing sent


class StationCertificates:
    """Answers the backend's certificate messages and keeps the station's certificate
    signed. One per station; :meth:`run` for the life of the OCPP client."""

    def __init__(self, *, certificates: CertificateStore, keys: ConfigurationKeys,
                 store: Store, charge_point_id: str, renew_before_days: int,
                 answer_timeout_s: float = ANSWER_TIMEOUT_S, attempts: int = ATTEMPTS,
                 check_interval_s: float = DAY_S, offline_retry_s: float = OFFLINE_RETRY_S,
                 ) -> None:
        self.certificates = certificates
        self.keys = keys
        self.store = store
        self.charge_point_id = charge_point_id
        self.renew_before = timedelta(days=renew_before_days)
        self.answer_timeout_s = answer_timeout_s
        self.attempts = attempts
        self.check_interval_s = check_interval_s
        self.offline_retry_s = offline_retry_s
        self._wanted = asyncio.Event()  # a SignCertificate is due (trigger or renewal)
        self._installed = asyncio.Event()  # a CertificateSigned was installed

    # -- backend -> station ------------------------------------------------------------------

    def install_certificate(self, certificate_type: str, certificate: str) -> str:
        """InstallCertificate: Accepted, or Rejected for a certificate refused (invalid, not
        a CA, store full, not signed by the installed root), Failed when writing it failed."""
        use = CertificateUse(certificate_type)
        try:
            plan = self.certificates.install_root(
                use, certificate,
                store_max_length=self.keys.get_int("CertificateStoreMaxLength"),
                additional_root_check=self.keys.get_bool("AdditionalRootCertificateCheck"))
        except CertificateError as exc:
            log.warning("certificates.install_refused", type=use.value, reason=str(exc))
            return "Rejected"
        except OSError as exc:
            log.error("certificates.install_failed", type=use.value, error=str(exc))
            return "Failed"
        if not plan.already_installed:
            subject = plan.cert.subject.rfc4514_string()
            log.info("certificates.root_installed", type=use.value, subject=subject)
            record_security_event(self.store, SECURITY_RECONFIGURED,
                                  f"{use.value} installed: {subject}")
        return "Accepted"

    def delete_certificate(self, certificate_hash_data: dict[str, Any]) -> str:
        """DeleteCertificate: Accepted, NotFound, or Failed (the last root of its type, a
        malformed hash data, a file that could not be removed)."""
        try:
            target = CertificateHashData.from_wire(certificate_hash_data)
            deleted = self.certificates.delete_root(target)
        except CertificateNotFound:
            return "NotFound"
        except CertificateError as exc:
            log.warning("certificates.delete_refused", reason=str(exc))
            return "Failed"
        except OSError as exc:
            log.error("certificates.delete_failed", error=str(exc))
            return "Failed"
        subject = deleted.cert.subject.rfc4514_string()
        log.info("certificates.root_deleted", type=deleted.use.value, subject=subject)
        record_security_event(self.store, SECURITY_RECONFIGURED,
                              f"{deleted.use.value} deleted: {subject}")
        return "Accepted"

    def installed_certificate_ids(self, certificate_type: str,
                                  ) -> tuple[str, list[dict[str, str]] | None]:
        """GetInstalledCertificateIds: (Accepted, hash data) or (NotFound, None)."""
        roots = self.certificates.roots(CertificateUse(certificate_type))
        if not roots:
            return "NotFound", None
        return "Accepted", [r.hash_data.to_wire() for r in roots]

    def certificate_signed(self, certificate_chain: str) -> str:
        """CertificateSigned: Accepted once installed (used from the next connection), or
        Rejected with an InvalidChargePointCertificate security event."""
        try:
            chain = self.certificates.install_charge_point_certificate(
                certificate_chain, charge_point_id=self.charge_point_id,
                cpo_name=self.keys.raw("CpoName"),
                max_chain_size=self.keys.get_int("CertificateSignedMaxChainSize"))
        except ChargePointCertificateRefused as exc:
            log.warning("certificates.charge_point_certificate_refused", reason=str(exc))
            record_security_event(self.store, INVALID_CHARGE_POINT_CERTIFICATE, str(exc)[:255])
            return "Rejected"
        except OSError as exc:
            log.error("certificates.charge_point_certificate_failed", error=str(exc))
            return "Rejected"
        leaf = chain[0]
        log.info("certificates.charge_point_certificate_installed",
                 subject=leaf.subject.rfc4514_string(),
                 not_after=leaf.not_valid_after_utc.isoformat())
        record_security_event(self.store, SECURITY_RECONFIGURED,
                              "charge point certificate installed, valid until "
                              f"{leaf.not_valid_after_utc.isoformat()}")
        self._installed.set()
        return "Accepted"

    # -- station -> backend ------------------------------------------------------------------

    def request_signing(self) -> None:
        """Send a SignCertificate now (ExtendedTriggerMessage SignChargePointCertificate)."""
        self._wanted.set()

    async def sign_certificate(self, send: SendNow) -> str | None:
        """One SignCertificate with a CSR over the pending key: the backend's status, or None
        when it was not delivered (offline, no answer, CALLERROR); ``NoCsr`` when the key
        could not be stored."""
        try:
            csr = self.certificates.signing_request(self.charge_point_id,
                                                    self.keys.raw("CpoName"))
        except OSError as exc:
            log.error("certificates.csr_failed", error=str(exc))
            return NO_CSR
        try:
            result = await send(call.SignCertificate(csr=csr))
        except Exception as exc:  # a timeout, a CALLERROR or the link's own errors
            log.warning("certificates.sign_certificate_failed",
                        error=f"{type(exc).__name__}: {exc}")
            return None
        if result is None:
            return None
        status = str(result.status)
        log.info("certificates.sign_certificate", status=status)
        return status

    def check_expiry(self) -> bool:
        """Whether the station's certificate is due for renewal; logs and records roots that
        expire soon."""
        now = self.certificates.now()
        for root in self.certificates.roots():
            if store_rules.expiring([root.cert], now, ROOT_WARNING):
                subject = root.cert.subject.rfc4514_string()
                until = root.cert.not_valid_after_utc.isoformat()
                log.warning("certificates.root_expiring", type=root.use.value, subject=subject,
                            not_after=until)
                record_security_event(self.store, ROOT_CERTIFICATE_EXPIRING,
                                      f"{root.use.value} {subject} expires {until}")
        chain = self.certificates.charge_point_chain()
        if not chain:
            return False
        due = store_rules.renewal_due(chain[0], now, self.renew_before)
        if due:
            log.info("certificates.renewal_due",
                     not_after=chain[0].not_valid_after_utc.isoformat())
        return due

    async def run(self, send: SendNow) -> None:
        """The daily expiry check (the first at once) and every SignCertificate asked for."""
        while True:
            try:
                if self.check_expiry():
                    self._wanted.set()
            except OSError as exc:  # an unreadable store must not end the client
                log.warning("certificates.expiry_check_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.check_interval_s):
                    await self._wanted.wait()
            if self._wanted.is_set():
                await self._sign_until_installed(send)

    async def _sign_until_installed(self, send: SendNow) -> None:
        self._installed.clear()
        attempt = 0
        while attempt < self.attempts:
            self._wanted.clear()
            status = await self.sign_certificate(send)
            if status is None and not self._installed.is_set():
                await self._wait(self.offline_retry_s)  # offline: not an attempt
                continue
            attempt += 1
            if status == "Accepted" or self._installed.is_set():
                await self._wait(self.answer_timeout_s)
                if self._installed.is_set():
                    return
                log.warning("certificates.no_certificate_signed", attempt=attempt,
                            waited_s=self.answer_timeout_s)
            else:
                await self._wait(self.answer_timeout_s)
        log.warning("certificates.signing_given_up", attempts=self.attempts)
        self._wanted.clear()

    async def _wait(self, seconds: float) -> None:
        """Until a certificate was installed, a new trigger came, or ``seconds`` passed."""
        installed = asyncio.ensure_future(self._installed.wait())
        wanted = asyncio.ensure_future(self._wanted.wait())
        try:
            await asyncio.wait({installed, wanted}, timeout=seconds,
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            installed.cancel()
            wanted.cancel()
