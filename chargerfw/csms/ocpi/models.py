"""Typed OCPI 2.2.1 objects (pydantic v2), as far as the CPO role needs them.

Field names, required/optional and enumerations follow the specification; lengths are
checked where the spec gives them for identifiers. Timestamps serialise as RFC 3339 UTC with
a ``Z`` and whole seconds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    model_validator,
)

# The OCPI version these models describe and this backend speaks.
VERSION = "2.2.1"


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; OCPI timestamps without an offset are UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


DateTime = Annotated[
    datetime,
    AfterValidator(as_utc),
    PlainSerializer(lambda v: v.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), return_type=str),
]
CountryCode = Annotated[str, StringConstraints(min_length=2, max_length=2, to_upper=True)]
PartyId = Annotated[str, StringConstraints(min_length=3, max_length=3, to_upper=True)]
CiString36 = Annotated[str, StringConstraints(min_length=1, max_length=36)]
Number = Annotated[Decimal, PlainSerializer(float, return_type=float)]


class OcpiModel(BaseModel):
    model_config = ConfigDict(use_enum_values=True, populate_by_name=True)


class Role(StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class ModuleID(StrEnum):
    cdrs = "cdrs"
    chargingprofiles = "chargingprofiles"
    commands = "commands"
    credentials = "credentials"
    hubclientinfo = "hubclientinfo"
    locations = "locations"
    sessions = "sessions"
    tariffs = "tariffs"
    tokens = "tokens"


class Version(OcpiModel):
    version: str
    url: str


class Endpoint(OcpiModel):
    identifier: str
    role: InterfaceRole
    url: str


class VersionDetails(OcpiModel):
    version: str
    endpoints: list[Endpoint]


class Image(OcpiModel):
    url: str
    thumbnail: str | None = None
    category: str
    type: str
    width: int | None = None
    height: int | None = None


class BusinessDetails(OcpiModel):
    name: Annotated[str, StringConstraints(max_length=100)]
    website: str | None = None
    logo: Image | None = None


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode


class Credentials(OcpiModel):
    token: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    url: str
    roles: Annotated[list[CredentialsRole], Field(min_length=1)]


class GeoLocation(OcpiModel):
    latitude: Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,2}\.[0-9]{5,7}$")]
    longitude: Annotated[str, StringConstraints(pattern=r"^-?[0-9]{1,3}\.[0-9]{5,7}$")]


class Status(StrEnum):
    AVAILABLE = "AVAILABLE"
    BLOCKED = "BLOCKED"
    CHARGING = "CHARGING"
    INOPERATIVE = "INOPERATIVE"
    OUTOFORDER = "OUTOFORDER"
    PLANNED = "PLANNED"
    REMOVED = "REMOVED"
    RESERVED = "RESERVED"
    UNKNOWN = "UNKNOWN"


class ConnectorType(StrEnum):
    CHADEMO = "CHADEMO"
    CHAOJI = "CHAOJI"
    DOMESTIC_A = "DOMESTIC_A"
    DOMESTIC_B = "DOMESTIC_B"
    DOMESTIC_C = "DOMESTIC_C"
    DOMESTIC_D = "DOMESTIC_D"
    DOMESTIC_E = "DOMESTIC_E"
    DOMESTIC_F = "DOMESTIC_F"
    DOMESTIC_G = "DOMESTIC_G"
    DOMESTIC_H = "DOMESTIC_H"
    DOMESTIC_I = "DOMESTIC_I"
    DOMESTIC_J = "DOMESTIC_J"
    DOMESTIC_K = "DOMESTIC_K"
    DOMESTIC_L = "DOMESTIC_L"
    DOMESTIC_M = "DOMESTIC_M"
    DOMESTIC_N = "DOMESTIC_N"
    DOMESTIC_O = "DOMESTIC_O"
    GBT_AC = "GBT_AC"
    GBT_DC = "GBT_DC"
    IEC_60309_2_single_16 = "IEC_60309_2_single_16"
    IEC_60309_2_three_16 = "IEC_60309_2_three_16"
    IEC_60309_2_three_32 = "IEC_60309_2_three_32"
    IEC_60309_2_three_64 = "IEC_60309_2_three_64"
    IEC_62196_T1 = "IEC_62196_T1"
    IEC_62196_T1_COMBO = "IEC_62196_T1_COMBO"
    IEC_62196_T2 = "IEC_62196_T2"
    IEC_62196_T2_COMBO = "IEC_62196_T2_COMBO"
    IEC_62196_T3A = "IEC_62196_T3A"
    IEC_62196_T3C = "IEC_62196_T3C"
    NEMA_5_20 = "NEMA_5_20"
    NEMA_6_30 = "NEMA_6_30"
    NEMA_6_50 = "NEMA_6_50"
    NEMA_10_30 = "NEMA_10_30"
    NEMA_10_50 = "NEMA_10_50"
    NEMA_14_30 = "NEMA_14_30"
    NEMA_14_50 = "NEMA_14_50"
    PANTOGRAPH_BOTTOM_UP = "PANTOGRAPH_BOTTOM_UP"
    PANTOGRAPH_TOP_DOWN = "PANTOGRAPH_TOP_DOWN"
    TESLA_R = "TESLA_R"
    TESLA_S = "TESLA_S"


class ConnectorFormat(StrEnum):
    SOCKET = "SOCKET"
    CABLE = "CABLE"


class PowerType(StrEnum):
    AC_1_PHASE = "AC_1_PHASE"
    AC_2_PHASE = "AC_2_PHASE"
    AC_2_PHASE_SPLIT = "AC_2_PHASE_SPLIT"
    AC_3_PHASE = "AC_3_PHASE"
    DC = "DC"


class Connector(OcpiModel):
    id: CiString36
    standard: ConnectorType
    format: ConnectorFormat
    power_type: PowerType
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None = None
    tariff_ids: list[CiString36] | None = None
    terms_and_conditions: str | None = None
    last_updated: DateTime


class Capability(StrEnum):
    CHARGING_PROFILE_CAPABLE = "CHARGING_PROFILE_CAPABLE"
    CHARGING_PREFERENCES_CAPABLE = "CHARGING_PREFERENCES_CAPABLE"
    CHIP_CARD_SUPPORT = "CHIP_CARD_SUPPORT"
    CONTACTLESS_CARD_SUPPORT = "CONTACTLESS_CARD_SUPPORT"
    CREDIT_CARD_PAYABLE = "CREDIT_CARD_PAYABLE"
    DEBIT_CARD_PAYABLE = "DEBIT_CARD_PAYABLE"
    PED_TERMINAL = "PED_TERMINAL"
    REMOTE_START_STOP_CAPABLE = "REMOTE_START_STOP_CAPABLE"
    RESERVABLE = "RESERVABLE"
    RFID_READER = "RFID_READER"
    START_SESSION_CONNECTOR_REQUIRED = "START_SESSION_CONNECTOR_REQUIRED"
    TOKEN_GROUP_CAPABLE = "TOKEN_GROUP_CAPABLE"
    UNLOCK_CAPABLE = "UNLOCK_CAPABLE"


class Facility(StrEnum):
    HOTEL = "HOTEL"
    RESTAURANT = "RESTAURANT"
    CAFE = "CAFE"
    MALL = "MALL"
    SUPERMARKET = "SUPERMARKET"
    SPORT = "SPORT"
    RECREATION_AREA = "RECREATION_AREA"
    NATURE = "NATURE"
    MUSEUM = "MUSEUM"
    BIKE_SHARING = "BIKE_SHARING"
    BUS_STOP = "BUS_STOP"
    TAXI_STAND = "TAXI_STAND"
    TRAM_STOP = "TRAM_STOP"
    METRO_STATION = "METRO_STATION"
    TRAIN_STATION = "TRAIN_STATION"
    AIRPORT = "AIRPORT"
    PARKING_LOT = "PARKING_LOT"
    CARPOOL_PARKING = "CARPOOL_PARKING"
    FUEL_STATION = "FUEL_STATION"
    WIFI = "WIFI"


class ParkingType(StrEnum):
    ALONG_MOTORWAY = "ALONG_MOTORWAY"
    PARKING_GARAGE = "PARKING_GARAGE"
    PARKING_LOT = "PARKING_LOT"
    ON_DRIVEWAY = "ON_DRIVEWAY"
    ON_STREET = "ON_STREET"
    UNDERGROUND_GARAGE = "UNDERGROUND_GARAGE"


def _begins_before_end(value: Any) -> Any:
    if value.period_end <= value.period_begin:
        raise ValueError("period_end must be later than period_begin")
    return value


class RegularHours(OcpiModel):
    weekday: Annotated[int, Field(ge=1, le=7)]
    period_begin: Annotated[str, StringConstraints(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]
    period_end: Annotated[str, StringConstraints(pattern=r"^([0-1][0-9]|2[0-3]):[0-5][0-9]$")]

    _order = model_validator(mode="after")(_begins_before_end)


class ExceptionalPeriod(OcpiModel):
    period_begin: DateTime
    period_end: DateTime

    _order = model_validator(mode="after")(_begins_before_end)


class Hours(OcpiModel):
    twentyfourseven: bool
    regular_hours: list[RegularHours] | None = None
    exceptional_openings: list[ExceptionalPeriod] | None = None
    exceptional_closings: list[ExceptionalPeriod] | None = None

    @model_validator(mode="after")
    def _regular_hours_unless_always_open(self) -> Hours:
        if self.twentyfourseven and self.regular_hours:
            raise ValueError("regular_hours only apply when twentyfourseven is false")
        if not self.twentyfourseven and not self.regular_hours:
            raise ValueError("give regular_hours when twentyfourseven is false")
        return self


class EVSE(OcpiModel):
    uid: CiString36
    evse_id: Annotated[str, StringConstraints(max_length=48)] | None = None
    status: Status
    status_schedule: list[dict[str, Any]] | None = None
    capabilities: list[Capability] | None = None
    connectors: Annotated[list[Connector], Field(min_length=1)]
    floor_level: str | None = None
    coordinates: GeoLocation | None = None
    physical_reference: str | None = None
    directions: list[dict[str, Any]] | None = None
    parking_restrictions: list[str] | None = None
    images: list[Image] | None = None
    last_updated: DateTime


class Location(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    publish: bool
    publish_allowed_to: list[dict[str, Any]] | None = None
    name: Annotated[str, StringConstraints(max_length=255)] | None = None
    address: Annotated[str, StringConstraints(max_length=45)]
    city: Annotated[str, StringConstraints(max_length=45)]
    postal_code: Annotated[str, StringConstraints(max_length=10)] | None = None
    state: str | None = None
    country: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    coordinates: GeoLocation
    related_locations: list[dict[str, Any]] | None = None
    parking_type: ParkingType | None = None
    evses: list[EVSE] | None = None
    directions: list[dict[str, Any]] | None = None
    operator: BusinessDetails | None = None
    suboperator: BusinessDetails | None = None
    owner: BusinessDetails | None = None
    facilities: list[Facility] | None = None
    time_zone: str
    opening_times: Hours | None = None
    charging_when_closed: bool | None = None
    images: list[Image] | None = None
    energy_mix: dict[str, Any] | None = None
    last_updated: DateTime


class TokenType(StrEnum):
    AD_HOC_USER = "AD_HOC_USER"
    APP_USER = "APP_USER"
    OTHER = "OTHER"
    RFID = "RFID"


class WhitelistType(StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class EnergyContract(OcpiModel):
    supplier_name: Annotated[str, StringConstraints(max_length=64)]
    contract_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class Token(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36
    visual_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    issuer: Annotated[str, StringConstraints(max_length=64)]
    group_id: CiString36 | None = None
    valid: bool
    whitelist: WhitelistType
    language: Annotated[str, StringConstraints(min_length=2, max_length=2)] | None = None
    default_profile_type: str | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class TokenPatch(OcpiModel):
    """A PATCH body: any Token field but its identity (country_code, party_id, uid, type);
    last_updated is required by the spec."""

    contract_id: CiString36 | None = None
    visual_number: Annotated[str, StringConstraints(max_length=64)] | None = None
    issuer: Annotated[str, StringConstraints(max_length=64)] | None = None
    group_id: CiString36 | None = None
    valid: bool | None = None
    whitelist: WhitelistType | None = None
    language: Annotated[str, StringConstraints(min_length=2, max_length=2)] | None = None
    default_profile_type: str | None = None
    energy_contract: EnergyContract | None = None
    last_updated: DateTime


class AllowedType(StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class LocationReferences(OcpiModel):
    location_id: CiString36
    evse_uids: list[CiString36] | None = None


class AuthorizationInfo(OcpiModel):
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString36 | None = None
    info: dict[str, Any] | None = None


class AuthMethod(StrEnum):
    AUTH_REQUEST = "AUTH_REQUEST"
    COMMAND = "COMMAND"
    WHITELIST = "WHITELIST"


class CdrToken(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class CdrDimensionType(StrEnum):
    CURRENT = "CURRENT"
    ENERGY = "ENERGY"
    ENERGY_EXPORT = "ENERGY_EXPORT"
    ENERGY_IMPORT = "ENERGY_IMPORT"
    MAX_CURRENT = "MAX_CURRENT"
    MIN_CURRENT = "MIN_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    POWER = "POWER"
    RESERVATION_TIME = "RESERVATION_TIME"
    STATE_OF_CHARGE = "STATE_OF_CHARGE"
    TIME = "TIME"


class CdrDimension(OcpiModel):
    type: CdrDimensionType
    volume: Number


class ChargingPeriod(OcpiModel):
    start_date_time: DateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString36 | None = None


class Price(OcpiModel):
    excl_vat: Number
    incl_vat: Number | None = None


class SessionStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    INVALID = "INVALID"
    PENDING = "PENDING"
    RESERVATION = "RESERVATION"


class Session(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    start_date_time: DateTime
    end_date_time: DateTime | None = None
    kwh: Number
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36
    meter_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    charging_periods: list[ChargingPeriod] | None = None
    total_cost: Price | None = None
    status: SessionStatus
    last_updated: DateTime


class CdrLocation(OcpiModel):
    id: CiString36
    name: str | None = None
    address: str
    city: str
    postal_code: str | None = None
    state: str | None = None
    country: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: Annotated[str, StringConstraints(max_length=48)]
    connector_id: CiString36
    connector_standard: ConnectorType
    connector_format: ConnectorFormat
    connector_power_type: PowerType


class TariffDimensionType(StrEnum):
    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class PriceComponent(OcpiModel):
    type: TariffDimensionType
    price: Number
    vat: Number | None = None
    step_size: int


class TariffRestrictions(OcpiModel):
    model_config = ConfigDict(extra="allow")


class TariffElement(OcpiModel):
    price_components: Annotated[list[PriceComponent], Field(min_length=1)]
    restrictions: TariffRestrictions | None = None


class Tariff(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: CiString36
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    type: str | None = None
    tariff_alt_text: list[dict[str, str]] | None = None
    tariff_alt_url: str | None = None
    min_price: Price | None = None
    max_price: Price | None = None
    elements: Annotated[list[TariffElement], Field(min_length=1)]
    energy_mix: dict[str, Any] | None = None
    start_date_time: DateTime | None = None
    end_date_time: DateTime | None = None
    last_updated: DateTime


class CDR(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    id: Annotated[str, StringConstraints(min_length=1, max_length=39)]
    start_date_time: DateTime
    end_date_time: DateTime
    session_id: CiString36 | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36 | None = None
    cdr_location: CdrLocation
    meter_id: str | None = None
    currency: Annotated[str, StringConstraints(min_length=3, max_length=3)]
    tariffs: list[Tariff] | None = None
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1)]
    signed_data: dict[str, Any] | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Number
    total_energy_cost: Price | None = None
    total_time: Number
    total_time_cost: Price | None = None
    total_parking_time: Number | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: str | None = None
    invoice_reference_id: str | None = None
    credit: bool | None = None
    credit_reference_id: str | None = None
    home_charging_compensation: bool | None = None
    last_updated: DateTime


class CommandType(StrEnum):
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class DisplayText(OcpiModel):
    language: Annotated[str, StringConstraints(min_length=2, max_length=2)]
    text: Annotated[str, StringConstraints(max_length=512)]


class CommandResponse(OcpiModel):
    result: CommandResponseType
    timeout: int
    message: list[DisplayText] | None = None


class CommandResult(OcpiModel):
    result: CommandResultType
    message: list[DisplayText] | None = None


class StartSession(OcpiModel):
    response_url: str
    token: Token
    location_id: CiString36
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class StopSession(OcpiModel):
    response_url: str
    session_id: CiString36


class ReserveNow(OcpiModel):
    response_url: str
    token: Token
    expiry_date: DateTime
    reservation_id: CiString36
    location_id: CiString36
    evse_uid: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class CancelReservation(OcpiModel):
    response_url: str
    reservation_id: CiString36


class UnlockConnector(OcpiModel):
    response_url: str
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36


# --- chargingprofiles (OCPI 2.2.1 section 13) -------------------------------------------------

class ChargingRateUnit(StrEnum):
    W = "W"
    A = "A"


# An OCPP 1.6 chargingSchedule holds at most a few dozen periods; more is not a real profile.
MAX_PROFILE_PERIODS = 48
# Longest schedule accepted: a week (OCPP limits are seconds in a 32-bit field anyway).
MAX_PROFILE_SECONDS = 7 * 24 * 3600


class ChargingProfilePeriod(OcpiModel):
    start_period: Annotated[int, Field(ge=0, le=MAX_PROFILE_SECONDS)]
    limit: Annotated[Decimal, Field(ge=0, le=1_000_000, allow_inf_nan=False),
                     PlainSerializer(float, return_type=float)]


class ChargingProfile(OcpiModel):
    start_date_time: DateTime | None = None
    duration: Annotated[int, Field(gt=0, le=MAX_PROFILE_SECONDS)] | None = None
    charging_rate_unit: ChargingRateUnit
    min_charging_rate: Annotated[Decimal, Field(ge=0, le=1_000_000, allow_inf_nan=False),
                                 PlainSerializer(float, return_type=float)] | None = None
    charging_profile_period: Annotated[list[ChargingProfilePeriod],
                                       Field(min_length=1, max_length=MAX_PROFILE_PERIODS)]

    @model_validator(mode="after")
    def _periods_in_order(self) -> ChargingProfile:
        starts = [p.start_period for p in self.charging_profile_period]
        if starts[0] != 0 or starts != sorted(set(starts)):
            raise ValueError("charging_profile_period: start_period must begin at 0 and "
                             "increase")
        return self


class SetChargingProfile(OcpiModel):
    charging_profile: ChargingProfile
    response_url: str


class ChargingProfileResponseType(StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ChargingProfileResponse(OcpiModel):
    result: ChargingProfileResponseType
    timeout: int


class ChargingProfileResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


class ActiveChargingProfile(OcpiModel):
    start_date_time: DateTime
    charging_profile: ChargingProfile


class ActiveChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType
    profile: ActiveChargingProfile | None = None


class ChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType


class ClearProfileResult(OcpiModel):
    result: ChargingProfileResultType


class ConnectionStatus(StrEnum):
    CONNECTED = "CONNECTED"
    OFFLINE = "OFFLINE"
    PLANNED = "PLANNED"
    SUSPENDED = "SUSPENDED"


class ClientInfo(OcpiModel):
    """A party connected to a hub, and the state of its connection (hubclientinfo)."""

    party_id: PartyId
    country_code: CountryCode
    role: Role
    status: ConnectionStatus
    last_updated: DateTime


DataT = TypeVar("DataT")


class Envelope(OcpiModel, Generic[DataT]):
    """The OCPI response envelope."""

    data: DataT | None = None
    status_code: int
    status_message: str | None = None
    timestamp: DateTime
