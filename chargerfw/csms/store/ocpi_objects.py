"""OCPI objects built from database rows: Locations (with EVSEs and Connectors), Sessions and
CDRs. No database access here: the storage modules read the rows and hand them over.

Every object is validated by its typed model before it leaves, so nothing malformed is served
or pushed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from chargerfw.csms import billing, tariff_engine
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.values import CpoIdentity, utcnow
from chargerfw.logs import get_logger

log = get_logger(__name__)


def dump(model: m.OcpiModel) -> dict[str, Any]:
    """An OCPI object as JSON data (absent optional fields left out)."""
    return model.model_dump(mode="json", exclude_none=True)


def connector_object(row: RowMapping) -> dict[str, Any]:
    obj = {key: row[key] for key in ("id", "standard", "format", "power_type", "max_voltage",
                                     "max_amperage", "max_electric_power", "last_updated")}
    if row["tariff_id"]:
        obj["tariff_ids"] = [row["tariff_id"]]
    return obj


def evse_capabilities(feature_profiles: str | None, rfid_reader: bool,
                      connector_formats: Iterable[str]) -> list[str]:
    """What partners may rely on at an EVSE, from what its charger supports.

    - REMOTE_START_STOP_CAPABLE: always; RemoteStart/StopTransaction are OCPP 1.6 Core, which
      every charger implements, and this backend serves START/STOP_SESSION.
    - RESERVABLE: only when the charger reported the OCPP "Reservation" feature profile
      (a charger that has not told us yet is not advertised as reservable).
    - UNLOCK_CAPABLE: when a connector is a socket (UnlockConnector is Core; an attached
      cable has no lock an eMSP could open for a driver).
    - RFID_READER: when the operator says the charger has a token reader (OCPP 1.6 has no
      way to ask).
    Charging profiles are not advertised: this backend has no chargingprofiles module.
    """
    profiles = {p.strip() for p in (feature_profiles or "").split(",")}
    capabilities = [m.Capability.REMOTE_START_STOP_CAPABLE]
    if "Reservation" in profiles:
        capabilities.append(m.Capability.RESERVABLE)
    if rfid_reader:
        capabilities.append(m.Capability.RFID_READER)
    if m.ConnectorFormat.SOCKET in set(connector_formats):
        capabilities.append(m.Capability.UNLOCK_CAPABLE)
    return sorted(str(c) for c in capabilities)


def evse_object(evse: RowMapping, connectors: list[dict[str, Any]]) -> dict[str, Any]:
    """An EVSE from its row (with its charger's ``feature_profiles`` and ``rfid_reader``)
    and its connectors' objects."""
    obj: dict[str, Any] = {
        "uid": evse["uid"], "evse_id": evse["evse_id"], "status": evse["status"],
        "capabilities": evse_capabilities(evse["feature_profiles"], evse["rfid_reader"],
                                          (c["format"] for c in connectors)),
        "connectors": connectors, "last_updated": evse["last_updated"]}
    return obj


def location_objects(rows: Sequence[RowMapping], evse_rows: Sequence[RowMapping],
                     connector_rows: Sequence[RowMapping]) -> list[dict[str, Any]]:
    """Locations from their rows and the rows of their EVSEs and connectors; an EVSE without
    connectors is left out (OCPI requires at least one)."""
    conns_by_evse: dict[str, list[dict[str, Any]]] = {}
    for conn in connector_rows:
        conns_by_evse.setdefault(conn["evse_uid"], []).append(connector_object(conn))
    evses_by_loc: dict[str, list[dict[str, Any]]] = {}
    for evse in evse_rows:
        if conns := conns_by_evse.get(evse["uid"]):
            evses_by_loc.setdefault(evse["location_id"], []).append(evse_object(evse, conns))
    result = []
    for row in rows:
        obj = {key: row[key] for key in ("country_code", "party_id", "id", "publish", "name",
                                         "address", "city", "postal_code", "country",
                                         "time_zone", "opening_times", "charging_when_closed",
                                         "operator", "facilities", "parking_type",
                                         "last_updated")}
        obj["coordinates"] = {"latitude": row["latitude"], "longitude": row["longitude"]}
        obj["evses"] = evses_by_loc.get(row["id"], [])
        result.append(dump(m.Location.model_validate(obj)))
    return result


def cdr_token(tx: RowMapping, cpo: CpoIdentity) -> dict[str, Any]:
    # A token we know nothing about (e.g. accepted offline) is reported under our own party.
    return {"country_code": tx["token_country_code"] or cpo.country_code,
            "party_id": tx["token_party_id"] or cpo.party_id, "uid": tx["id_tag"],
            "type": tx["token_type"] or "RFID", "contract_id": tx["contract_id"] or tx["id_tag"]}


def bill(tx: RowMapping, samples: list[billing.Sample], tariff: dict[str, Any] | None,
         time_zone: str | None, reservation: tariff_engine.Reservation | None = None,
         join_alike: bool = True) -> tariff_engine.Bill:
    """A transaction's usage, priced under ``tariff`` at a location in ``time_zone``: up to
    its end when it has finished, up to its last meter reading while it runs."""
    meter_stop = None
    if tx["stop_time"] is not None:
        # A meter that was replaced or reset mid-session must not produce negative energy.
        meter_stop = tx["meter_start"] + max(tx["meter_stop"] - tx["meter_start"], 0)
    usage = billing.usage(tx["start_time"], tx["meter_start"], samples, tx["stop_time"],
                          meter_stop)
    zone = tariff_engine.time_zone(time_zone)
    try:
        return tariff_engine.price_session(tariff, usage, zone, reservation, tx["start_time"],
                                           join_alike)
    except tariff_engine.TariffError as exc:
        # Only a tariff stored before tariffs were checked can get here; the session's
        # record must still be written, so it is left unpriced and said so.
        log.error("billing.tariff_unpriceable", tariff_id=tx["tariff_id"],
                  session_id=tx["session_id"], error=str(exc))
        return tariff_engine.price_session(None, usage, zone, join_alike=join_alike)


def session_object(cpo: CpoIdentity, tx: RowMapping, samples: list[billing.Sample],
                   connector: RowMapping, tariff: dict[str, Any] | None,
                   time_zone: str | None = None,
                   reservation: tariff_engine.Reservation | None = None) -> dict[str, Any]:
    """The OCPI Session of a transaction, priced under ``tariff`` exactly as its CDR is; a
    running session's ``total_cost`` is what it costs as of its last meter reading."""
    # Periods are never joined here: partners append the ones a PATCH carries.
    priced = bill(tx, samples, tariff, time_zone, reservation, join_alike=False)
    periods = tariff_engine.charging_period_objects(priced.periods, tx["tariff_id"])
    obj: dict[str, Any] = {
        "country_code": cpo.country_code, "party_id": cpo.party_id,
        "id": tx["session_id"], "start_date_time": tx["start_time"],
        "end_date_time": tx["stop_time"],
        "kwh": Decimal(tx["meter_last"] - tx["meter_start"]) / 1000,
        "cdr_token": cdr_token(tx, cpo), "auth_method": tx["auth_method"],
        "authorization_reference": tx["authorization_reference"],
        "location_id": tx["location_id"], "evse_uid": tx["evse_uid"],
        "connector_id": connector["id"], "currency": tx["currency"],
        "charging_periods": periods or None, "status": tx["status"],
        "total_cost": priced.total.as_price(),
        "last_updated": tx["last_updated"]}
    return dump(m.Session.model_validate(obj))


@dataclass(frozen=True)
class SentSession:
    """What a partner holds of a session after the pushes queued to it: the session's fields
    but ``charging_periods``, and one digest per charging period, in order."""

    fields: dict[str, Any]
    period_digests: list[str]

    @classmethod
    def of(cls, session: dict[str, Any]) -> SentSession:
        return cls({k: v for k, v in session.items() if k != "charging_periods"},
                   [period_digest(p) for p in session.get("charging_periods", [])])


def period_digest(period: dict[str, Any]) -> str:
    """A ChargingPeriod's identity: any change to it gives another digest."""
    canonical = json.dumps(period, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class SessionPush:
    method: str  # PUT or PATCH
    body: dict[str, Any]


def session_update(sent: SentSession | None, session: dict[str, Any]) -> SessionPush | None:
    """What to push to a partner that holds ``sent`` (None: nothing we know of) so it holds
    ``session``; None when it holds that already.

    OCPI 2.2.1 (Sessions, PATCH): a receiver adds PATCHed ``charging_periods`` to the ones it
    has, and fields left out stay as they are. So a PATCH carries the fields that changed,
    the periods the partner lacks, and ``last_updated``. Where a PATCH cannot say it (a
    period the partner holds changed or went away, a field went away) the whole session is
    PUT, as the spec asks for replacing periods.
    """
    if sent is None:
        return SessionPush("PUT", session)
    periods = session.get("charging_periods", [])
    held = len(sent.period_digests)
    if [period_digest(p) for p in periods[:held]] != sent.period_digests:
        return SessionPush("PUT", session)
    fields = {k: v for k, v in session.items() if k != "charging_periods"}
    if set(sent.fields) - set(fields):
        return SessionPush("PUT", session)
    body = {k: v for k, v in fields.items()
            if k != "last_updated" and sent.fields.get(k) != v}
    if periods[held:]:
        body["charging_periods"] = periods[held:]
    if not body:
        return None
    body["last_updated"] = session["last_updated"]
    return SessionPush("PATCH", body)


def cdr_object(cpo: CpoIdentity, tx: RowMapping, evse: RowMapping, location: RowMapping,
               connector: RowMapping, samples: list[billing.Sample],
               tariff: dict[str, Any] | None,
               reservation: tariff_engine.Reservation | None = None) -> dict[str, Any]:
    """The OCPI CDR of a completed transaction at ``evse`` of ``location``."""
    priced = bill(tx, samples, tariff, location["time_zone"], reservation)
    periods = tariff_engine.charging_period_objects(priced.periods, tx["tariff_id"])
    obj: dict[str, Any] = {
        "country_code": cpo.country_code, "party_id": cpo.party_id,
        "id": tx["session_id"], "start_date_time": tx["start_time"],
        "end_date_time": tx["stop_time"], "session_id": tx["session_id"],
        "cdr_token": cdr_token(tx, cpo), "auth_method": tx["auth_method"],
        "authorization_reference": tx["authorization_reference"],
        "cdr_location": {
            "id": location["id"], "name": location["name"], "address": location["address"],
            "city": location["city"], "postal_code": location["postal_code"],
            "country": location["country"],
            "coordinates": {"latitude": location["latitude"],
                            "longitude": location["longitude"]},
            "evse_uid": evse["uid"], "evse_id": evse["evse_id"] or evse["uid"],
            "connector_id": connector["id"], "connector_standard": connector["standard"],
            "connector_format": connector["format"],
            "connector_power_type": connector["power_type"]},
        "currency": tx["currency"],
        "tariffs": [tariff] if tariff else None,
        "charging_periods": periods,
        "total_cost": priced.total.as_price(),
        "total_fixed_cost": priced.fixed.as_price(),
        "total_energy": priced.energy_kwh,
        "total_energy_cost": priced.energy.as_price(),
        "total_time": billing.hours_between(tx["start_time"], tx["stop_time"]),
        "total_time_cost": priced.time.as_price(),
        "total_parking_time": priced.parking_hours.quantize(Decimal("0.000001")),
        "total_parking_cost": priced.parking.as_price(),
        "total_reservation_cost": (priced.reservation.as_price()
                                   if reservation is not None else None),
        "remark": tx["remark"],
        "last_updated": utcnow()}
    return dump(m.CDR.model_validate(obj))
