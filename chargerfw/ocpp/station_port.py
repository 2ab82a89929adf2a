"""What the OCPP client needs from the station: who it is (:class:`BootInfo`) and the port
backend commands go through (:class:`StationPort`).

The station core (or the runtime that wires it) implements the port; the OCPP client never
touches connectors, contactors or the pilot itself. Answers use the OCPP 1.6 wire spellings.

These run inside the handling of a backend CALL, on the frame reader: they must return quickly
and must never await an OCPP request (``OcppClient.authorize`` ...) themselves, since its answer
could only be read after they return. Schedule such work as a task instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from chargerfw.logs import get_logger
from chargerfw.station.charging_profiles import (
    ChargingProfile,
    ChargingRateUnit,
    ClearCriteria,
    CompositeSchedule,
)
from chargerfw.station.firmware import FirmwareRequest

log = get_logger(__name__)

AvailabilityAnswer = Literal["Accepted", "Rejected", "Scheduled"]
UnlockAnswer = Literal["Unlocked", "UnlockFailed", "NotSupported"]
ResetKind = Literal["Soft", "Hard"]
ReservationAnswer = Literal["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"]
SignedUpdateAnswer = Literal["Accepted", "Rejected", "AcceptedCanceled", "InvalidCertificate"]


@dataclass(frozen=True)
class BootInfo:
    """What the charge point says about itself at every boot."""

    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    meter_type: str | None = None
    meter_serial_number: str | None = None


class StationPort(Protocol):
    def remote_start(self, id_tag: str, connector_id: int | None, authorize: bool,
                     charging_profile: ChargingProfile | None = None) -> bool:
        """RemoteStartTransaction. True = the station will try (the reply is Accepted); the
        transaction itself starts later through :meth:`OcppClient.start_transaction`.
        ``authorize`` is AuthorizeRemoteTxRequests: authorize ``id_tag`` first (Authorize or
        local rules) before starting. ``connector_id`` None = the station picks one.
        ``charging_profile`` (a TxProfile) is installed for the transaction that starts, or the
        start is refused (ProfileRejected): never accepted without it."""
        ...

    def set_charging_profile(self, connector_id: int, profile: ChargingProfile) -> None:
        """SetChargingProfile (SmartCharging). Raises ProfileRejected with the reason."""
        ...

    def clear_charging_profile(self, criteria: ClearCriteria) -> bool:
        """ClearChargingProfile. True = at least one profile matched and is gone."""
        ...

    def composite_schedule(self, connector_id: int, duration_s: int,
                           unit: ChargingRateUnit | None) -> CompositeSchedule:
        """GetCompositeSchedule from now. Raises ProfileRejected for an unknown connector."""
        ...

    def remote_stop(self, connector_id: int) -> bool:
        """RemoteStopTransaction for the transaction running on ``connector_id`` (the client
        resolved the backend's transactionId). True = it will stop with reason Remote."""
        ...

    def change_availability(self, connector_id: int, operative: bool) -> AvailabilityAnswer:
        """ChangeAvailability; ``connector_id`` 0 = the whole station. Scheduled when a
        transaction runs and the change applies after it ends."""
        ...

    async def unlock(self, connector_id: int) -> UnlockAnswer:
        """UnlockConnector: stop a running transaction (reason UnlockCommand) and unlock."""
        ...

    async def reset(self, kind: ResetKind) -> None:
        """Reset, called after the Accepted reply went out: stop transactions with reason
        SoftReset/HardReset (their StopTransaction in the outbox) and restart."""
        ...

    def reserve_now(self, connector_id: int, expires_at: float, id_tag: str,
                    reservation_id: int, parent_id_tag: str | None) -> ReservationAnswer:
        """ReserveNow (Reservation profile; optional: a station without it is answered
        Rejected). ``expires_at`` is a Unix time in the future; the reservation ends by itself
        then. The same ``reservation_id`` again replaces that reservation."""
        ...

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation. True = a reservation with that id existed and is gone."""
        ...

    def update_firmware(self, request: FirmwareRequest) -> str | None:
        """UpdateFirmware (FirmwareManagement; optional: a station without it is answered
        NotImplemented). None: taken (it replaces one that has not started installing);
        otherwise why it is refused."""
        ...

    def signed_update_firmware(self, request: FirmwareRequest) -> SignedUpdateAnswer:
        """SignedUpdateFirmware (Security Whitepaper; optional: a station without it is
        answered NotImplemented). ``request`` carries request_id, signature and
        signing_certificate. InvalidCertificate: the signing certificate does not chain to an
        installed ManufacturerRootCertificate (nothing stored); AcceptedCanceled: it replaced
        an update that had not started installing; Rejected: one is installing."""
        ...

    def firmware_status(self) -> str:
        """The FirmwareStatusNotification status last reported (Idle when none runs)."""
        ...

    def transaction_confirmed(self, connector_id: int, local_id: int, transaction_id: int,
                              id_tag: str, id_tag_info: dict[str, str]) -> None:
        """StartTransaction.conf arrived. ``id_tag_info`` uses wire keys (status, expiryDate,
        parentIdTag); a status other than Accepted lets StopTransactionOnInvalidId act."""
        ...

    def id_tag_info_received(self, id_tag: str, id_tag_info: dict[str, str]) -> None:
        """Any idTagInfo from the backend (Authorize, Start/StopTransaction) for the cache."""
        ...


@dataclass(frozen=True)
class FirmwareState:
    """Where a firmware update stands, for a triggered FirmwareStatusNotification (or, with
    ``request_id`` from SignedUpdateFirmware, SignedFirmwareStatusNotification)."""

    status: str = "Idle"
    request_id: int | None = None


class LogSource(Protocol):
    """What the station uploads for GetDiagnostics and GetLog. Both are called on a worker
    thread (they may read the journal and the store for a while) and write one file;
    ``since``/``until`` (Unix times, None = open) limit what carries a time. Secrets are
    redacted by the source."""

    def write_diagnostics(self, path: Path, since: float | None, until: float | None) -> None:
        """The support bundle (tar.gz) at ``path``."""
        ...

    def write_security_log(self, path: Path, since: float | None, until: float | None) -> None:
        """The security log (text, one event a line) at ``path``."""
        ...


def notify_id_tag_info(station: StationPort | None, id_tag: str, info: dict[str, str]) -> None:
    """Give an idTagInfo from the backend to the station, if there is one to give; a failing
    station is logged, never raised into the OCPP side."""
    if station is not None and info:
        try:
            station.id_tag_info_received(id_tag, info)
        except Exception:
            log.exception("station.id_tag_info_failed")
