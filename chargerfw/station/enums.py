"""OCPP 1.6 value sets the station core speaks, spelled exactly as on the wire, and the
connector's transaction phase (:class:`TxPhase`), which the control API shows.

OCPP 1.6 types ChargePointErrorCode, ChargePointStatus, AuthorizationStatus, Reason,
AvailabilityType, AvailabilityStatus, ConfigurationStatus and ReservationStatus. They are our own StrEnums, not ``ocpp.v16.enums``, so
that the station layer does not depend on a wire library (layers point down: drivers <- station
<- ocpp) and an OCPP 2.0.1 adapter can map them too; a test checks that every spelling equals
the ``ocpp`` library's. Being StrEnums, they go onto the wire as they are.
"""

from __future__ import annotations

import enum

# OCPP connectorId 0: the whole station. Also how the store, the control API and every fault
# name what concerns all connectors (an RCD trip, the emergency stop).
STATION = 0


class ChargePointStatus(enum.StrEnum):
    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EVSE = "SuspendedEVSE"
    SUSPENDED_EV = "SuspendedEV"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class ChargePointErrorCode(enum.StrEnum):
    CONNECTOR_LOCK_FAILURE = "ConnectorLockFailure"
    EV_COMMUNICATION_ERROR = "EVCommunicationError"
    GROUND_FAILURE = "GroundFailure"
    HIGH_TEMPERATURE = "HighTemperature"
    INTERNAL_ERROR = "InternalError"
    LOCAL_LIST_CONFLICT = "LocalListConflict"
    NO_ERROR = "NoError"
    OTHER_ERROR = "OtherError"
    OVER_CURRENT_FAILURE = "OverCurrentFailure"
    OVER_VOLTAGE = "OverVoltage"
    POWER_METER_FAILURE = "PowerMeterFailure"
    POWER_SWITCH_FAILURE = "PowerSwitchFailure"
    READER_FAILURE = "ReaderFailure"
    RESET_FAILURE = "ResetFailure"
    UNDER_VOLTAGE = "UnderVoltage"
    WEAK_SIGNAL = "WeakSignal"


class AuthorizationStatus(enum.StrEnum):
    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class StopReason(enum.StrEnum):
    EMERGENCY_STOP = "EmergencyStop"
    EV_DISCONNECTED = "EVDisconnected"
    HARD_RESET = "HardReset"
    LOCAL = "Local"
    OTHER = "Other"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    REMOTE = "Remote"
    SOFT_RESET = "SoftReset"
    UNLOCK_COMMAND = "UnlockCommand"
    DE_AUTHORIZED = "DeAuthorized"


class Availability(enum.StrEnum):
    """OCPP 1.6 AvailabilityType."""

    OPERATIVE = "Operative"
    INOPERATIVE = "Inoperative"


class AvailabilityChange(enum.StrEnum):
    """OCPP 1.6 AvailabilityStatus: the answer to ChangeAvailability."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    SCHEDULED = "Scheduled"


class ChangeStatus(enum.StrEnum):
    """OCPP 1.6 ConfigurationStatus: the answer to ChangeConfiguration (and to the technician's
    key changes)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    REBOOT_REQUIRED = "RebootRequired"
    NOT_SUPPORTED = "NotSupported"


class TxPhase(enum.StrEnum):
    """Where a connector's transaction stands (the station's own, not an OCPP value set)."""

    IDLE = "idle"  # no authorization, no transaction
    AUTHORIZED = "authorized"  # a tag was accepted, waiting for the vehicle
    RUNNING = "running"  # StartTransaction issued
    FINISHED = "finished"  # StopTransaction issued, cable still plugged in


class ReservationStatus(enum.StrEnum):
    """OCPP 1.6 ReservationStatus: the answer to ReserveNow."""

    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"
