"""The station's security log (OCPP Security Whitepaper, "Security events/logging"): every
security-relevant event is recorded by :func:`record_security_event`, the one function for it;
GetLog(SecurityLog) uploads what it recorded."""

from __future__ import annotations

from chargerfw.logs import get_logger
from chargerfw.store import Store, StoreError

log = get_logger(__name__)

# Event types of the whitepaper's list ("Security events").
FIRMWARE_UPDATED = "FirmwareUpdated"
FAILED_TO_AUTHENTICATE = "FailedToAuthenticateAtCentralSystem"
CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE = "CentralSystemFailedToAuthenticate"
SETTING_SYSTEM_TIME = "SettingSystemTime"
STARTUP = "StartupOfTheDevice"
RESET = "ResetOrReboot"
SECURITY_LOG_CLEARED = "SecurityLogWasCleared"
SECURITY_RECONFIGURED = "ReconfigurationOfSecurityParameters"
MEMORY_EXHAUSTION = "MemoryExhaustion"
INVALID_MESSAGES = "InvalidMessages"
ATTEMPTED_REPLAY_ATTACKS = "AttemptedReplayAttacks"
TAMPER_DETECTED = "TamperDetectionActivated"
INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
INVALID_CENTRAL_SYSTEM_CERTIFICATE = "InvalidCentralSystemCertificate"
INVALID_CHARGE_POINT_CERTIFICATE = "InvalidChargePointCertificate"
INVALID_TLS_VERSION = "InvalidTLSVersion"
INVALID_TLS_CIPHER_SUITE = "InvalidTLSCipherSuite"

def record_security_event(store: Store, event_type: str, tech_info: str | None = None) -> None:
    """Append one event to the security log (durable) and the journal. A store that refuses
    it is logged, never raised: recording must not break what it records."""
    log.info("security.event", type=event_type, tech_info=tech_info)
    try:
        store.security_event_add(event_type, tech_info)
    except (StoreError, OSError):
        log.exception("security.event_not_recorded", type=event_type)
