"""The station's security log (OCPP Security Whitepaper, "Security events/logging"): every
security-relevant event is recorded by :func:`record_security_event`, the one function for it;
GetLog(SecurityLog) uploads what it recorded.

The whitepaper's critical events (:data:`CRITICAL_EVENTS`) are also pushed to the backend as a
SecurityEventNotification through the durable outbox, queued in the same store transaction as
the log entry; every event is pushed when the vendor key ``ChargerfwNotifyAllSecurityEvents``
is true. The outbox pump that delivers them registers with :func:`wake_on_security_events`, so
an event recorded while online goes out at once, from whichever thread recorded it.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Callable

from chargerfw.config.ocpp_keys import NOTIFY_ALL_SECURITY_EVENTS_KEY
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

# The whitepaper's critical events (1.6 Security Whitepaper, "Security events"): pushed to the
# backend with SecurityEventNotification; the others are only logged unless the vendor key says.
CRITICAL_EVENTS = frozenset({
    FIRMWARE_UPDATED, SETTING_SYSTEM_TIME, STARTUP, RESET, SECURITY_LOG_CLEARED,
    MEMORY_EXHAUSTION, TAMPER_DETECTED,
})

_wakers: weakref.WeakKeyDictionary[Store, list[Callable[[], None]]] = weakref.WeakKeyDictionary()
_wakers_lock = threading.Lock()


def wake_on_security_events(store: Store, wake: Callable[[], None]) -> None:
    """Call ``wake`` (from the recording thread) after a notification was queued in ``store``."""
    with _wakers_lock:
        _wakers.setdefault(store, []).append(wake)


def is_notified(store: Store, event_type: str) -> bool:
    """Whether ``event_type`` is pushed to the backend: critical, or every event by key."""
    if event_type in CRITICAL_EVENTS:
        return True
    try:
        return store.config_get(NOTIFY_ALL_SECURITY_EVENTS_KEY) == "true"
    except (StoreError, sqlite3.Error):
        return False


def record_security_event(store: Store, event_type: str, tech_info: str | None = None) -> None:
    """Append one event to the security log and, when it is notified (:func:`is_notified`),
    queue its SecurityEventNotification in the same durable commit; and the journal. A store
    that refuses it is logged, never raised: recording must not break what it records."""
    log.info("security.event", type=event_type, tech_info=tech_info)
    notify = is_notified(store, event_type)
    try:
        store.security_event_add(event_type, tech_info, notify=notify)
    except (StoreError, OSError, sqlite3.Error):
        log.exception("security.event_not_recorded", type=event_type)
        return
    if notify:
        with _wakers_lock:
            wakers = list(_wakers.get(store, ()))
        for wake in wakers:
            wake()
