"""Raising the security profile (SecurityProfile, OCPP 1.6 Security Whitepaper) and the keys
whose changes are applied here rather than stored as they come.

SecurityProfile moves up only. A raise is Rejected when the new profile's prerequisites are
missing: a password (AuthorizationKey or ``[ocpp] password``) for 1 and 2, a wss:// URL
(``[ocpp] url`` or ``secure_url``) and an installed CentralSystemRootCertificate for 2 and 3,
the station's certificate and a private key only its owner can read for 3. Once Accepted the
station reconnects with the new profile, on trial: the first connection that succeeds makes
it the station's profile (kept in the store, so a restart uses it); after
:data:`TRIAL_ATTEMPTS` failed attempts the station falls back to the previous profile, keeps
it, and reports it (log and a security event). The profile on trial is never what a restart
reads: a power cut during the trial leaves the previous profile, which connected.
"""

from __future__ import annotations

from collections.abc import Callable

from chargerfw.config import StationConfig
from chargerfw.logs import get_logger
from chargerfw.ocpp.config_keys import ConfigStore, ConfigurationKeys
from chargerfw.ocpp.credentials import AuthorizationKeyFile
from chargerfw.ocpp.security_log import SECURITY_RECONFIGURED
from chargerfw.ocpp.tls import TlsSetupError, check_private_key_file, installed_roots
from chargerfw.station.enums import ChangeStatus

log = get_logger(__name__)

PROFILE_KEY = "SecurityProfile"
# "<from>><to>" while a raise is on trial, "" otherwise: what a restart finds of a trial.
TRIAL_KEY = "ChargerfwSecurityProfileTrial"
TRIAL_ATTEMPTS = 3  # failed connection attempts with the new profile before falling back

EventRecorder = Callable[[str, str], None]


def profile_problem(config: StationConfig, profile: int, passwords: Callable[[], list[str]],
                    ) -> str | None:
    """Why this station cannot use ``profile`` now, or None."""
    ocpp, security = config.ocpp, config.security
    if ocpp is None:
        return "the station config has no [ocpp] section"
    if profile in (1, 2) and not passwords():
        return f"security profile {profile} needs an AuthorizationKey or [ocpp] password"
    if profile >= 2:
        if ocpp.tls_url is None:
            return f"security profile {profile} needs a wss:// URL ([ocpp] secure_url)"
        if not installed_roots(security.central_system_roots_dir):
            return (f"security profile {profile} needs an installed "
                    "CentralSystemRootCertificate")
    if profile == 3:
        if not security.charge_point_certificate.is_file():
            return "security profile 3 needs the station's certificate (SignCertificate)"
        try:
            check_private_key_file(security.charge_point_key)
        except TlsSetupError as exc:
            return str(exc)
    return None


class SecurityProfiles:
    """The station's security profile: the one in use, and a raise on trial."""

    def __init__(self, store: ConfigStore, configured: int,
                 problem: Callable[[int], str | None], record_event: EventRecorder,
                 trial_attempts: int = TRIAL_ATTEMPTS) -> None:
        self._store = store
        self._problem = problem
        self._record_event = record_event
        self._trial_attempts = trial_attempts
        self._trial: int | None = None
        self._failures = 0
        self._last_error = ""
        stored = store.config_get(PROFILE_KEY)
        if stored is not None and configured > int(stored):
            # A technician raised the profile in the station file: it is the station's now.
            store.config_set(PROFILE_KEY, str(configured))
        self._configured = configured
        self._recover()

    @property
    def effective(self) -> int:
        """The profile that connected last (or the configured one): what a restart uses."""
        stored = self._store.config_get(PROFILE_KEY)
        return self._configured if stored is None else int(stored)

    @property
    def trial(self) -> int | None:
        return self._trial

    def current(self) -> int:
        """The profile the next connection attempt uses."""
        return self._trial if self._trial is not None else self.effective

    def apply(self, value: str) -> tuple[ChangeStatus, str]:
        """ChangeConfiguration SecurityProfile: Rejected unless it raises the profile and the
        new profile can be set up; Accepted starts the trial (the reconnect follows the
        reply)."""
        wanted, effective = int(value), self.effective
        if self._trial is not None:
            return ChangeStatus.REJECTED, f"a raise to profile {self._trial} is being tried"
        if wanted < effective:
            return ChangeStatus.REJECTED, f"the profile is never lowered ({effective} to {wanted})"
        if wanted == effective:
            return ChangeStatus.ACCEPTED, ""
        problem = self._problem(wanted)
        if problem:
            return ChangeStatus.REJECTED, problem
        self._store.config_set(TRIAL_KEY, f"{effective}>{wanted}")
        self._trial, self._failures, self._last_error = wanted, 0, ""
        log.info("ocpp.security_profile_trial", previous=effective, trying=wanted)
        return ChangeStatus.ACCEPTED, ""

    def observe(self, profile: int, error: BaseException | None) -> None:
        """One connection attempt with ``profile`` ended: connected (``error`` None) or not."""
        if self._trial is None or profile != self._trial:
            return
        previous = self.effective
        if error is None:
            self._store.config_set(PROFILE_KEY, str(profile))
            self._store.config_set(TRIAL_KEY, "")
            self._trial = None
            log.info("ocpp.security_profile_raised", previous=previous, profile=profile)
            self._record_event(SECURITY_RECONFIGURED,
                               f"SecurityProfile raised from {previous} to {profile}")
            return
        self._failures += 1
        self._last_error = f"{type(error).__name__}: {error}"
        if self._failures < self._trial_attempts:
            return
        self._store.config_set(TRIAL_KEY, "")
        self._trial = None
        log.warning("ocpp.security_profile_fallback", tried=profile, kept=previous,
                    attempts=self._failures, error=self._last_error)
        self._record_event(
            SECURITY_RECONFIGURED,
            f"SecurityProfile {profile} failed to connect {self._failures} times "
            f"({self._last_error}); kept {previous}")

    def _recover(self) -> None:
        marker = self._store.config_get(TRIAL_KEY)
        if not marker:
            return
        self._store.config_set(TRIAL_KEY, "")
        previous, _, wanted = marker.partition(">")
        if wanted and int(wanted) != self.effective:
            log.warning("ocpp.security_profile_trial_interrupted", tried=wanted, kept=previous)
            self._record_event(SECURITY_RECONFIGURED,
                               f"SecurityProfile {wanted} was on trial when the station "
                               f"restarted; kept {self.effective}")


def station_keys(config: StationConfig, store: ConfigStore, provision: bool = False,
                 ) -> tuple[ConfigurationKeys, AuthorizationKeyFile]:
    """The station's OCPP keys over its store, the AuthorizationKey in its own file (a key an
    older release kept in the store is moved there). The service (which also writes the
    config's ``[ocpp.keys]``: ``provision``), the CLI and the control API build them here
    alike; the service adds the SecurityProfile applier."""
    ocpp, security = config.ocpp, config.security
    provisioned = ocpp.keys if ocpp is not None and provision else {}
    keys = ConfigurationKeys(store, number_of_connectors=len(config.connector),
                             overrides={k: str(v) for k, v in provisioned.items()},
                             security_profile=ocpp.security_profile if ocpp else 0,
                             defaults=config.ocpp_key_defaults(),
                             additional_root_certificate_check=(
                                 security.additional_root_certificate_check))
    authorization_keys = AuthorizationKeyFile(config.security.authorization_key_file,
                                              provisioned=ocpp.password if ocpp else None)
    authorization_keys.adopt_from_store(store)
    keys.set_applier("AuthorizationKey", authorization_key_applier(authorization_keys))
    return keys, authorization_keys


def authorization_key_applier(authorization_keys: AuthorizationKeyFile,
                              ) -> Callable[[str], tuple[ChangeStatus, str]]:
    """AuthorizationKey into its file (from the backend only over an encrypted link: the OCPP
    adapter checks that before the change reaches the keys)."""

    def apply(value: str) -> tuple[ChangeStatus, str]:
        try:
            authorization_keys.set(value)
        except OSError as exc:
            return ChangeStatus.REJECTED, f"cannot write {authorization_keys.path}: {exc.strerror}"
        return ChangeStatus.ACCEPTED, ""

    return apply
