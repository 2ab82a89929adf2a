"""What goes into and comes out of the store: the CPO's identity, what an operator registers,
authorisation decisions, start requests, pages of listings, EVSE status changes, queued
pushes; the store's errors; and the clock it stamps rows with."""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True)
class CpoIdentity:
    country_code: str = "NL"
    party_id: str = "CFW"
    name: str = "chargerfw CSMS"
    currency: str = "EUR"


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
class PageQuery:
    offset: int = 0
    limit: int = 50
    date_from: datetime | None = None
    date_to: datetime | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int


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
