"""The station's security log (OCPP Security Whitepaper, "Security events/logging"): every
security-relevant event is recorded by :func:`record_security_event`, the one function for it;
GetLog(SecurityLog) uploads what it recorded."""

from __future__ import annotations

from chargerfw.logs import get_logger
from chargerfw.store import Store, StoreError

log = get_logger(__name__)

# Event types of the whitepaper this firmware records.
STARTUP = "StartupOfTheDevice"
RESET = "ResetOrReboot"
FIRMWARE_UPDATED = "FirmwareUpdated"
INVALID_FIRMWARE_SIGNATURE = "InvalidFirmwareSignature"
INVALID_FIRMWARE_SIGNING_CERTIFICATE = "InvalidFirmwareSigningCertificate"
FAILED_TO_AUTHENTICATE = "FailedToAuthenticateAtCentralSystem"
SECURITY_RECONFIGURED = "ReconfigurationOfSecurityParameters"


def record_security_event(store: Store, event_type: str, tech_info: str | None = None) -> None:
    """Append one event to the security log (durable) and the journal. A store that refuses
    it is logged, never raised: recording must not break what it records."""
    log.info("security.event", type=event_type, tech_info=tech_info)
    try:
        store.security_event_add(event_type, tech_info)
    except (StoreError, OSError):
        log.exception("security.event_not_recorded", type=event_type)
