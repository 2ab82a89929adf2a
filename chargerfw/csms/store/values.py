"""What goes into and comes out of the store: the CPO's identity, what an operator registers,
authorisation decisions, start requests, pages of listings, EVSE status changes, queued
pushes; the store's errors; and the clock it stamps rows with."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Now, in UTC, to whole seconds (OCPI timestamps carry seconds)."""
    return datetime.now(UTC).replace(microsecond=0)


class StoreError(Exception):
    """A request the data layer refuses; ``str()`` says why."""


class NotFound(StoreError):
    """The object does not exist."""


class AlreadyExists(StoreError):
    """An object with that identity exists already."""


# The eMI3 EVSE ID: country, operator, "E", power outlet id (separators "*" optional).
EVSE_ID_PATTERN = r"^[A-Z]{2}\*?[A-Z0-9]{3}\*?E[A-Z0-9][A-Z0-9*]{0,30}$"
# How an EVSE registered without an evse_id is named; see ``CpoIdentity.evse_id_for``.
DEFAULT_EVSE_ID_FORMAT = "{country_code}*{party_id}*E{uid}"


@dataclass(frozen=True)
class CpoIdentity:
    country_code: str = "NL"
    party_id: str = "CFW"
    name: str = "chargerfw CSMS"
    currency: str = "EUR"
    # Fields: {country_code}, {party_id}, {uid} (the EVSE uid), {charge_point}, {connector}.
    evse_id_format: str = DEFAULT_EVSE_ID_FORMAT

    def evse_id_for(self, uid: str, charge_point_id: str, connector_id: int) -> str:
        """The eMI3 EVSE ID of an EVSE registered without one; raises StoreError when the
        format does not give one (e.g. a field it does not know)."""
        def outlet(value: str) -> str:
            # eMI3 allows letters, digits and "*" after the "E": other runs become one "*".
            return re.sub(r"[^A-Z0-9]+", "*", value.upper()).strip("*")

        try:
            evse_id = self.evse_id_format.format(
                country_code=self.country_code.upper(), party_id=self.party_id.upper(),
                uid=outlet(uid), charge_point=outlet(charge_point_id),
                connector=str(connector_id))
        except (KeyError, IndexError, ValueError) as exc:
            raise StoreError(f"EVSE id format {self.evse_id_format!r}: {exc!r}") from None
        return check_evse_id(evse_id)


def check_evse_id(evse_id: str) -> str:
    """``evse_id`` in upper case when it is an eMI3 EVSE ID, else StoreError."""
    normalised = evse_id.strip().upper()
    if not re.match(EVSE_ID_PATTERN, normalised) or len(normalised) > 48:
        raise StoreError(f"EVSE id {evse_id!r} is not an eMI3 EVSE ID like NL*CFW*E12345 "
                         "(country, operator, E, then up to 31 letters, digits or *)")
    return normalised


@dataclass(frozen=True)
class ConnectorSpec:
    id: str
    standard: str
    format: str
    power_type: str
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None = None


@dataclass(frozen=True)
class EvseSpec:
    uid: str
    ocpp_connector_id: int
    connectors: Sequence[ConnectorSpec]
    evse_id: str | None = None


@dataclass(frozen=True)
class LocationSpec:
    id: str
    address: str
    city: str
    country: str
    latitude: str
    longitude: str
    time_zone: str
    name: str | None = None
    postal_code: str | None = None
    publish: bool = True
    details: LocationDetails | None = None


@dataclass(frozen=True)
class LocationDetails:
    """What an eMSP app shows of a location besides its address; each as its OCPI field
    (``opening_times`` an OCPI Hours object, ``operator`` a BusinessDetails object). None
    leaves a field as it is when details are changed."""

    opening_times: dict[str, Any] | None = None
    charging_when_closed: bool | None = None
    operator: dict[str, Any] | None = None
    facilities: Sequence[str] | None = None
    parking_type: str | None = None


@dataclass(frozen=True)
class AuthDecision:
    """How an idTag was authorised, and the token it stands for."""

    status: str  # OCPP AuthorizationStatus: Accepted, Blocked, Expired, Invalid
    auth_method: str = "WHITELIST"
    country_code: str | None = None
    party_id: str | None = None
    token_type: str | None = None
    contract_id: str | None = None
    authorization_reference: str | None = None
    # When the charger must ask again (it may cache the answer until then).
    expires_at: datetime | None = None
    # The token's group (OCPP parentIdTag): cards of one group may stop each other's sessions.
    parent_id_tag: str | None = None


@dataclass(frozen=True)
class StartRequest:
    charge_point_id: str
    connector_id: int
    id_tag: str
    meter_start: int
    timestamp: datetime
    reservation_id: int | None = None

    def idempotency_key(self) -> str:
        ident = "|".join([self.charge_point_id, str(self.connector_id), self.id_tag,
                          self.timestamp.astimezone(UTC).isoformat(), str(self.meter_start)])
        return hashlib.sha256(ident.encode()).hexdigest()


@dataclass(frozen=True)
class PageKey:
    """A position in a listing ordered by (last_updated, id): the last row a page held."""

    last_updated: datetime
    id: int | str


class BadPageKey(StoreError):
    """A page key that cannot be a position in the listing it was given to."""


@dataclass(frozen=True)
class PageQuery:
    """A page of a listing: ``limit`` rows from ``offset`` on or, when ``after`` is given
    (the previous page's ``Page.next_key``), the rows that follow that key; ``offset`` then
    only numbers them."""

    offset: int = 0
    limit: int = 50
    date_from: datetime | None = None
    date_to: datetime | None = None
    after: PageKey | None = None


@dataclass(frozen=True)
class Page:
    """A page and how many rows the whole listing holds; ``next_key`` (None on the last
    page) is where the next page starts."""

    items: list[dict[str, Any]]
    total: int
    next_key: PageKey | None = None


def json_text(data: Any) -> str:
    """JSON data as the text the backend sends it in (compact; NaN refused)."""
    return json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


@dataclass(frozen=True)
class JsonPage:
    """A page whose items are JSON text, each one object: what is kept rendered is sent as
    it was stored, neither parsed nor serialized again."""

    items: list[str]
    total: int
    next_key: PageKey | None = None

    @classmethod
    def of(cls, page: Page) -> JsonPage:
        return cls([json_text(item) for item in page.items], page.total, page.next_key)

    def parsed(self) -> Page:
        return Page([json.loads(item) for item in self.items], self.total, self.next_key)


@dataclass(frozen=True)
class EvseChange:
    location_id: str
    evse_uid: str
    status: str


@dataclass
class PushItem:
    id: int
    partner_id: int
    module: str
    method: str
    url: str
    body: Any
    attempts: int
    their_token: str | None = field(repr=False, default=None)
    country_code: str | None = None  # the partner's, for the OCPI-to-* routing headers
    party_id: str | None = None
    role: str | None = None  # the partner's (a HUB routes to the party a push is for)
