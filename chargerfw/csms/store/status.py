"""OCPP 1.6 connector statuses as OCPI EVSE statuses, and when a charger counts as offline
(its EVSEs then show UNKNOWN)."""

from __future__ import annotations

from datetime import datetime, timedelta

# OCPP 1.6 ChargePointStatus -> OCPI EVSE status (see shared/reference/ocpi-2.2.1.md).
_EVSE_STATUS = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}


# OCPP 1.6 StatusNotification for connector 0 speaks for the whole charge point; these two
# take every EVSE of it out of service while they last.
_WHOLE_CHARGE_POINT_STATUS = {"Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER"}


def evse_status_from_ocpp(status: str) -> str:
    """Map an OCPP 1.6 connector status to an OCPI EVSE status."""
    return _EVSE_STATUS.get(status, "UNKNOWN")


def evse_status(connector_status: str | None, charge_point_status: str | None) -> str:
    """The OCPI status of an EVSE from its own OCPP connector's last status and that of
    connector 0 (the whole charge point); None where no StatusNotification arrived yet.

    Connector 0 Unavailable makes every EVSE INOPERATIVE and Faulted makes it OUTOFORDER;
    an EVSE that is itself faulted stays OUTOFORDER. Otherwise the EVSE's own status counts.
    """
    own = evse_status_from_ocpp(connector_status) if connector_status else "UNKNOWN"
    whole = _WHOLE_CHARGE_POINT_STATUS.get(charge_point_status or "")
    if whole is None or own == "OUTOFORDER":
        return own
    return whole


def is_offline(connected: bool, last_seen: datetime, now: datetime, grace: timedelta,
               heartbeat_interval: timedelta) -> bool:
    """Whether a charger we last heard from at ``last_seen`` has dropped off.

    Disconnected: after ``grace`` from its disconnect. Connected: once nothing came from it
    (any message counts) for its heartbeat interval (as told in its BootNotification) and
    ``grace`` more: a connection can stay open while the charger behind it hangs.
    """
    allowed = grace if not connected else heartbeat_interval + grace
    return now - last_seen > allowed
