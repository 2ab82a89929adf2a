"""The control API: every method the running service answers on its control socket, each with
one request type and one reply type.

The socket's JSON is derived from these msgspec Structs: the server decodes a request's params
into its request type (unknown or ill-typed params are refused with -32602 and a message that
names them) and encodes the handler's reply; the CLI and the fleet build requests and read
typed replies. A request type carries its method as ``method`` and its
reply type as its type parameter (``FaultClearRequest`` is a ``Request[FaultClearReply]``).

Wire protocol (newline-delimited JSON): a request is ``{"id": any, "method": str, "params":
{...}}`` (``params`` optional); each gets one reply line, ``{"id": ..., "result": ...}`` or
``{"id": ..., "error": {"code": int, "message": str}}``. Error codes follow JSON-RPC 2.0:
-32700 not JSON, -32600 not a valid request, -32601 unknown method, -32602 bad params,
-32000 the station refused (for example a fault whose condition is still there), -32603 an
internal error.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

import msgspec
from msgspec import Meta

from chargerfw.drivers.types import (
    MeterSample,
    PilotMode,
    PilotState,
)

# The hardware tests' replies are the safety core's results (it runs the tests), re-exported here
# with the rest of the API.
from chargerfw.safety.results import ContactorStep as ContactorStep
from chargerfw.safety.results import ContactorTestReply as ContactorTestReply
from chargerfw.safety.results import ContactorVerdict as ContactorVerdict
from chargerfw.safety.results import HardwareTestReply as HardwareTestReply
from chargerfw.safety.results import LockStep as LockStep
from chargerfw.safety.results import LockTestReply as LockTestReply
from chargerfw.safety.results import PilotStep as PilotStep
from chargerfw.safety.results import PilotTestReply as PilotTestReply
from chargerfw.safety.results import RcdTestReply as RcdTestReply
from chargerfw.station.charging_profiles import (
    ChargingRateUnit,
    CompositeSchedule,
    composite_to_wire,
)
from chargerfw.station.enums import (
    STATION,
    Availability,
    ChangeStatus,
    ChargePointErrorCode,
    ChargePointStatus,
    TxPhase,
)
from chargerfw.station.faults import ClearRule, Fault, FaultKind
from chargerfw.validation import Invalid, convert

# -- the protocol's error codes ---------------------------------------------------------------
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
REFUSED = -32000


class ControlError(Exception):
    """An error reply (or one to send): ``code`` as above."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def method_missing(self) -> bool:
        """The service does not offer the method (an older firmware, or no simulator)."""
        return self.code == METHOD_NOT_FOUND


class InvalidParams(ControlError):
    def __init__(self, message: str) -> None:
        super().__init__(INVALID_PARAMS, message)


class Refused(ControlError):
    def __init__(self, message: str) -> None:
        super().__init__(REFUSED, message)


class Method(enum.StrEnum):
    STATUS = "status"
    FAULTS = "faults"
    FAULT_CLEAR = "fault.clear"
    METER_SAMPLE = "meter.sample"
    RFID_NEXT = "rfid.next"
    CONFIG_SET = "config.set"
    TEST_CONTACTOR = "test.contactor"
    TEST_RCD = "test.rcd"
    TEST_PILOT = "test.pilot"
    TEST_LOCK = "test.lock"
    # Served only by a simulated station (hardware = "sim").
    CHARGING_PROFILES = "charging_profiles"
    SIM_PLUG = "sim.plug"
    SIM_CHARGE = "sim.charge"
    SIM_STOP_CHARGING = "sim.stop_charging"
    SIM_UNPLUG = "sim.unplug"
    SIM_SHORT_PILOT = "sim.short_pilot"
    SIM_CLEAR_SHORT = "sim.clear_short"
    SIM_REMOVE_DIODE = "sim.remove_diode"
    SIM_RESTORE_DIODE = "sim.restore_diode"
    SIM_TAP = "sim.tap"
    SIM_RCD_TRIP = "sim.rcd_trip"
    SIM_RCD_CLEAR = "sim.rcd_clear"
    SIM_ESTOP_PRESS = "sim.estop_press"
    SIM_ESTOP_RELEASE = "sim.estop_release"
    SIM_WELD = "sim.weld"
    SIM_REPAIR = "sim.repair"
    SIM_FAIL_TO_CLOSE = "sim.fail_to_close"
    SIM_TEMPERATURE = "sim.temperature"
    SIM_READER_UNPLUG = "sim.reader_unplug"
    SIM_READER_REPLUG = "sim.reader_replug"
    SIM_OVERDRAW = "sim.overdraw"
    SIM_TAMPER_OPEN = "sim.tamper_open"
    SIM_TAMPER_CLOSE = "sim.tamper_close"


ReplyT = TypeVar("ReplyT")


# Params a request type does not name are refused, not ignored.
class Request(msgspec.Struct, Generic[ReplyT], frozen=True, forbid_unknown_fields=True):
    """A request: ``method`` names it on the wire; the type parameter is its reply type."""

    method: ClassVar[Method]


class Reply(msgspec.Struct, frozen=True):
    """A reply. One with ``omit_defaults`` leaves its optional fields (default None) out of the
    JSON while they are None."""


class OnConnector(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The params of a method about one connector."""

    connector: int = 1


# -- status ---------------------------------------------------------------------------------------
class ReservationStatus(Reply, frozen=True):
    reservation_id: int
    id_tag: str


class TransactionStatus(Reply, frozen=True):
    local_id: int
    transaction_id: int | None  # the backend's, once StartTransaction was confirmed
    id_tag: str
    started_at: float
    meter_start_wh: int
    energy_wh: float


class ConnectorMeter(Reply, frozen=True):
    """The connector's latest meter sample as the status shows it (per-phase lists)."""

    age_s: float
    energy_import_wh: float
    power_w: float | None
    voltage_v: list[float | None]
    current_a: list[float | None]
    frequency_hz: float | None

    def as_sample(self, now: float) -> MeterSample:
        """The sample again, timed ``age_s`` before ``now``."""
        voltages = (self.voltage_v + [None] * 3)[:3]
        currents = (self.current_a + [None] * 3)[:3]
        return MeterSample(
            now - self.age_s,
            self.energy_import_wh,
            power_w=self.power_w,
            voltage_l1_v=voltages[0],
            voltage_l2_v=voltages[1],
            voltage_l3_v=voltages[2],
            current_l1_a=currents[0],
            current_l2_a=currents[1],
            current_l3_a=currents[2],
            frequency_hz=self.frequency_hz,
        )


class CurrentLimitStatus(Reply, frozen=True):
    """What limits a connector's offered current now, and each source's limit."""

    # hardware_max | thermal | profile | charge_point_max | offline_fallback | local
    source: str
    detail: str  # e.g. "profile 12 (TxDefaultProfile)"
    smart_charging_a: float | None
    thermal_a: float | None
    hardware_max_a: float
    offline_fallback: bool


class ConnectorStatus(Reply, frozen=True):
    id: int
    status: ChargePointStatus
    error_code: ChargePointErrorCode
    vendor_error_code: str | None
    pilot: PilotState
    pilot_output: PilotMode
    current_limit_a: float | None
    contactor_closed: bool
    availability: Availability
    scheduled_availability: Availability | None
    phase: TxPhase
    reservation: ReservationStatus | None
    transaction: TransactionStatus | None
    starting: bool  # a StartTransaction waits for a fresh meter sample
    under_test: str | None  # the technician's hardware test running here
    temperature_c: float | None
    meter: ConnectorMeter | None
    limit: CurrentLimitStatus | None = None  # None: the service is not running


class LinkStatus(Reply, frozen=True):
    """The backend link as the OCPP connection reports its health."""

    state: str = "disconnected"  # disconnected | connecting | connected
    url: str = ""
    connected_since: float | None = None
    last_frame_in_at: float | None = None
    last_frame_out_at: float | None = None
    last_pong_latency_s: float | None = None
    ping_interval_s: int = 0
    connects: int = 0
    failed_attempts: int = 0
    last_error: str | None = None
    next_attempt_in_s: float | None = None


class BackendStatus(Reply, frozen=True):
    url: str | None
    online: bool
    registration: str | None
    link: LinkStatus
    clock_offset_s: float | None


class OutboxStatus(Reply, frozen=True):
    pending: int
    dead: int


class FirmwareUpdateStatus(Reply, frozen=True):
    """The firmware update: the status last reported to the backend and, while downloading,
    the progress."""

    status: str  # FirmwareStatusNotification spelling: Idle, Downloading, ...
    phase: str
    location: str | None = None  # without a password
    version: str | None = None  # the release downloaded, once verified
    bytes: int | None = None
    total: int | None = None
    percent: float | None = None
    trial_deadline: float | None = None  # this release is on trial until then


class ActiveFault(Reply, frozen=True):
    kind: FaultKind
    connector: int  # 0: the whole station
    detail: str
    since: float
    error_code: ChargePointErrorCode
    clears: ClearRule
    description: str  # what it means (the fault catalogue's)
    hint: str  # what to check or do

    @classmethod
    def of(cls, fault: Fault) -> ActiveFault:
        spec = fault.spec
        return cls(
            fault.kind,
            fault.connector_id,
            fault.detail,
            fault.timestamp,
            spec.error_code,
            spec.clear_rule,
            spec.description,
            spec.hint,
        )


class ReaderStatus(Reply, frozen=True):
    name: str
    available: bool


class StatusReply(Reply, frozen=True):
    station: str
    firmware_version: str
    hardware: str
    started_at: float | None
    available: bool  # the whole station (ChangeAvailability on connector 0)
    connectors: list[ConnectorStatus]
    backend: BackendStatus
    outbox: OutboxStatus
    faults: list[ActiveFault]
    reader: ReaderStatus | None
    firmware: FirmwareUpdateStatus | None = None

    def connector(self, connector_id: int) -> ConnectorStatus | None:
        return next((c for c in self.connectors if c.id == connector_id), None)


class StatusRequest(Request[StatusReply], frozen=True):
    method: ClassVar[Method] = Method.STATUS


# -- charging profiles ----------------------------------------------------------------------------
class SchedulePeriodStatus(Reply, frozen=True):
    start_period: int  # seconds from the schedule's start
    limit: float


class CompositeScheduleStatus(Reply, frozen=True):
    """GetCompositeSchedule of one connector (0: the charge point's total)."""

    connector: int
    start: str  # ISO 8601, UTC
    duration_s: int
    unit: Literal["A", "W"]
    periods: list[SchedulePeriodStatus]

    @classmethod
    def of(cls, schedule: CompositeSchedule) -> CompositeScheduleStatus:
        wire = composite_to_wire(schedule)
        return cls(schedule.connector_id, wire["start_schedule"], schedule.duration,
                   "A" if schedule.charging_rate_unit is ChargingRateUnit.AMPS else "W",
                   [SchedulePeriodStatus(p.start_period, p.limit) for p in schedule.periods])


class ChargingProfilesReply(Reply, frozen=True):
    # Each installed profile as its OCPP csChargingProfiles object (snake_case), with the
    # connector it is on and whether it waits for its RemoteStart's transaction.
    profiles: list[dict[str, Any]]
    schedules: list[CompositeScheduleStatus]


class ChargingProfilesRequest(Request[ChargingProfilesReply], frozen=True):
    method: ClassVar[Method] = Method.CHARGING_PROFILES
    connector: int | None = None  # None: connector 0 and every connector
    duration_s: Annotated[int, Meta(ge=0, le=31 * 86400)] = 86400
    unit: Literal["A", "W"] = "A"


# -- faults ---------------------------------------------------------------------------------------
class FaultHistoryEntry(Reply, frozen=True):
    code: str
    connector: int  # 0: the whole station
    detail: str
    raised_at: float
    cleared_at: float | None
    needs_technician: bool


class FaultsReply(Reply, frozen=True, omit_defaults=True):
    active: list[ActiveFault]
    history: list[FaultHistoryEntry] | None = None  # when asked for


class FaultsRequest(Request[FaultsReply], frozen=True):
    method: ClassVar[Method] = Method.FAULTS

    history: bool = False
    limit: int = 100


class FaultClearReply(Reply, frozen=True):
    cleared: FaultKind
    connector: int  # 0: the whole station


class FaultClearRequest(Request[FaultClearReply], frozen=True):
    """A technician's clear of a latched fault (``connector`` 0: a station-wide one)."""

    method: ClassVar[Method] = Method.FAULT_CLEAR

    kind: FaultKind
    connector: int = STATION


# -- meter, reader, keys -----------------------------------------------------------------------
@dataclass(frozen=True)
class MeterSampleReply(MeterSample):
    """The connector's latest meter sample, and how old it is."""

    age_s: float = field(kw_only=True)

    def sample(self) -> MeterSample:
        """The sample without its age."""
        return MeterSample(**{f.name: getattr(self, f.name) for f in fields(MeterSample)})


class MeterSampleRequest(OnConnector, Request[MeterSampleReply | None], frozen=True):
    """None when the connector has no sample yet."""

    method: ClassVar[Method] = Method.METER_SAMPLE


class RfidNextReply(Reply, frozen=True, omit_defaults=True):
    """The next card presented; ``id_tag`` None if none came in time."""

    id_tag: str | None
    reader: str
    uid: str | None = None  # hex, upper case
    at: float | None = None


class RfidNextRequest(Request[RfidNextReply], frozen=True):
    """Wait for the next card on the station's reader (the station handles it as usual too)."""

    method: ClassVar[Method] = Method.RFID_NEXT

    wait_s: float = 60.0


class ConfigSetReply(Reply, frozen=True):
    key: str
    status: ChangeStatus
    reason: str


class ConfigSetRequest(Request[ConfigSetReply], frozen=True):
    """ChangeConfiguration from the technician: validated like the backend's."""

    method: ClassVar[Method] = Method.CONFIG_SET

    key: str
    value: str


# -- the guarded hardware tests --------------------------------------------------------------
class ContactorTestRequest(OnConnector, Request[ContactorTestReply], frozen=True):
    method: ClassVar[Method] = Method.TEST_CONTACTOR


class RcdTestRequest(Request[RcdTestReply], frozen=True):
    method: ClassVar[Method] = Method.TEST_RCD


class PilotTestRequest(OnConnector, Request[PilotTestReply], frozen=True):
    method: ClassVar[Method] = Method.TEST_PILOT


class LockTestRequest(OnConnector, Request[LockTestReply], frozen=True):
    method: ClassVar[Method] = Method.TEST_LOCK


HardwareTestRequest = ContactorTestRequest | RcdTestRequest | PilotTestRequest | LockTestRequest


# -- the simulated hardware (sim.*) ------------------------------------------------------------
class VehicleReply(Reply, frozen=True):
    connector: int
    vehicle: str  # the simulated vehicle's state: unplugged, connected, charging, ventilation


class SimPlugRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_PLUG


class SimChargeRequest(OnConnector, Request[VehicleReply], frozen=True):
    """The vehicle asks for energy, drawing at most ``max_current_a`` (None: as before)."""

    method: ClassVar[Method] = Method.SIM_CHARGE

    max_current_a: float | None = None


class SimStopChargingRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_STOP_CHARGING


class SimUnplugRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_UNPLUG


class SimShortPilotRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_SHORT_PILOT


class SimClearShortRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_CLEAR_SHORT


class SimRemoveDiodeRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_REMOVE_DIODE


class SimRestoreDiodeRequest(OnConnector, Request[VehicleReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_RESTORE_DIODE


class TapReply(Reply, frozen=True):
    presented: str


class SimTapRequest(Request[TapReply], frozen=True):
    """A card with this UID (hex) on the simulated reader for ``hold_s``."""

    method: ClassVar[Method] = Method.SIM_TAP

    uid: str
    hold_s: float = 0.3


class RcmSwitchReply(Reply, frozen=True):
    rcm: str  # trip, clear


class SimRcdTripRequest(Request[RcmSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_RCD_TRIP


class SimRcdClearRequest(Request[RcmSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_RCD_CLEAR


class EmergencyStopSwitchReply(Reply, frozen=True):
    emergency_stop: str  # press, release


class SimEstopPressRequest(Request[EmergencyStopSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_ESTOP_PRESS


class SimEstopReleaseRequest(Request[EmergencyStopSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_ESTOP_RELEASE


class TamperSwitchReply(Reply, frozen=True):
    tamper: str  # open, close


class SimTamperOpenRequest(Request[TamperSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_TAMPER_OPEN


class SimTamperCloseRequest(Request[TamperSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_TAMPER_CLOSE


class ContactorSimReply(Reply, frozen=True):
    connector: int
    contactor: str  # weld, repair, fail_to_close


class SimWeldRequest(OnConnector, Request[ContactorSimReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_WELD


class SimRepairRequest(OnConnector, Request[ContactorSimReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_REPAIR


class SimFailToCloseRequest(OnConnector, Request[ContactorSimReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_FAIL_TO_CLOSE


class TemperatureReply(Reply, frozen=True):
    connector: int
    celsius: float


class SimTemperatureRequest(Request[TemperatureReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_TEMPERATURE

    celsius: float
    connector: int = 1


class ReaderSwitchReply(Reply, frozen=True):
    reader: str  # unplug, replug


class SimReaderUnplugRequest(Request[ReaderSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_READER_UNPLUG


class SimReaderReplugRequest(Request[ReaderSwitchReply], frozen=True):
    method: ClassVar[Method] = Method.SIM_READER_REPLUG


class OverdrawReply(Reply, frozen=True):
    connector: int
    overdraw_a: float


class SimOverdrawRequest(Request[OverdrawReply], frozen=True):
    """The vehicle draws ``amps`` more than the pilot offers (0 to stop)."""

    method: ClassVar[Method] = Method.SIM_OVERDRAW

    amps: float
    connector: int = 1


# -- the registry and the JSON ---------------------------------------------------------------
REQUEST_TYPES: dict[Method, type[Request[Any]]] = {
    request.method: request
    for request in (
        StatusRequest,
        FaultsRequest,
        FaultClearRequest,
        MeterSampleRequest,
        RfidNextRequest,
        ConfigSetRequest,
        ChargingProfilesRequest,
        ContactorTestRequest,
        RcdTestRequest,
        PilotTestRequest,
        LockTestRequest,
        SimPlugRequest,
        SimChargeRequest,
        SimStopChargingRequest,
        SimUnplugRequest,
        SimShortPilotRequest,
        SimClearShortRequest,
        SimRemoveDiodeRequest,
        SimRestoreDiodeRequest,
        SimTapRequest,
        SimRcdTripRequest,
        SimRcdClearRequest,
        SimEstopPressRequest,
        SimEstopReleaseRequest,
        SimWeldRequest,
        SimRepairRequest,
        SimFailToCloseRequest,
        SimTemperatureRequest,
        SimReaderUnplugRequest,
        SimReaderReplugRequest,
        SimOverdrawRequest,
        SimTamperOpenRequest,
        SimTamperCloseRequest,
    )
}
assert set(REQUEST_TYPES) == set(Method), "every method needs its request type"


def _declared_reply(request_type: type[Request[Any]]) -> Any:
    for klass in request_type.__mro__:
        for base in getattr(klass, "__orig_bases__", ()):
            if typing.get_origin(base) is Request:
                return typing.get_args(base)[0]
    raise TypeError(f"{request_type.__name__} is not a Request[...]")


REPLY_TYPES: dict[Method, Any] = {
    method: _declared_reply(request) for method, request in REQUEST_TYPES.items()
}


def reply_type(request_type: type[Request[Any]]) -> Any:
    """The reply type a request type declares as its type parameter."""
    return REPLY_TYPES[request_type.method]


def decode_request(method: str, params: Mapping[str, object]) -> Request[Any]:
    """A request from the wire: :class:`ControlError` -32601 for an unknown method, -32602
    (naming each bad param) for params its request type does not accept."""
    try:
        request_type = REQUEST_TYPES[Method(method)]
    except ValueError:
        raise ControlError(METHOD_NOT_FOUND, f"unknown method {method!r}") from None
    # Strict: no "1" for an integer, no true for a number, no 1.5 for a count.
    try:
        return convert(dict(params), request_type)
    except Invalid as exc:
        raise InvalidParams(f"{method}: {exc}") from None


def request_params(request: Request[Any]) -> dict[str, Any]:
    """A request's params as JSON values."""
    params = msgspec.to_builtins(request)
    assert isinstance(params, dict)
    return params


def encode_reply(request_type: type[Request[Any]], reply: object) -> Any:
    """A handler's reply as JSON values (a reply type with ``omit_defaults`` leaves its
    optional fields out while None)."""
    return msgspec.to_builtins(reply)


class BadReply(ControlError):
    """The service's answer does not read as the method's reply type."""

    def __init__(self, method: Method, result: object, problems: str) -> None:
        super().__init__(
            INTERNAL_ERROR, f"the service answered {method} with {result!r}: {problems}"
        )


def decode_reply(request_type: type[Request[ReplyT]], result: object) -> ReplyT:
    """The typed reply from a ``result`` on the wire; :class:`BadReply` if it does not fit."""
    try:
        return typing.cast(ReplyT, convert(result, reply_type(request_type)))
    except Invalid as exc:
        raise BadReply(request_type.method, result, str(exc)) from None
