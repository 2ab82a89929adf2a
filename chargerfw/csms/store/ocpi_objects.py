"""OCPI objects built from database rows: Locations (with EVSEs and Connectors), Sessions and
CDRs. No database access here: the storage modules read the rows and hand them over.

Every object is validated by its typed model before it leaves, so nothing malformed is served
or pushed.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import RowMapping

from chargerfw.csms import billing
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store.values import CpoIdentity, utcnow


def dump(model: m.OcpiModel) -> dict[str, Any]:
    """An OCPI object as JSON data (absent optional fields left out)."""
    return model.model_dump(mode="json", exclude_none=True)


def connector_object(row: RowMapping) -> dict[str, Any]:
    obj = {key: row[key] for key in ("id", "standard", "format", "power_type", "max_voltage",
                                     "max_amperage", "max_electric_power", "last_updated")}
    if row["tariff_id"]:
        obj["tariff_ids"] = [row["tariff_id"]]
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
        evses_by_loc.setdefault(evse["location_id"], []).append({
            "uid": evse["uid"], "evse_id": evse["evse_id"], "status": evse["status"],
            "connectors": conns_by_evse.get(evse["uid"], []),
            "last_updated": evse["last_updated"]})
    result = []
    for row in rows:
        obj = {key: row[key] for key in ("country_code", "party_id", "id", "publish", "name",
                                         "address", "city", "postal_code", "country",
                                         "time_zone", "last_updated")}
        obj["coordinates"] = {"latitude": row["latitude"], "longitude": row["longitude"]}
        obj["evses"] = [e for e in evses_by_loc.get(row["id"], []) if e["connectors"]]
        result.append(dump(m.Location.model_validate(obj)))
    return result


def cdr_token(tx: RowMapping, cpo: CpoIdentity) -> dict[str, Any]:
    # A token we know nothing about (e.g. accepted offline) is reported under our own party.
    return {"country_code": tx["token_country_code"] or cpo.country_code,
            "party_id": tx["token_party_id"] or cpo.party_id, "uid": tx["id_tag"],
            "type": tx["token_type"] or "RFID", "contract_id": tx["contract_id"] or tx["id_tag"]}


def finished_cost(tx: RowMapping, samples: list[billing.Sample],
                  tariff: dict[str, Any] | None
                  ) -> tuple[billing.Cost, list[dict[str, Any]], float]:
    """A finished transaction's cost under ``tariff``, its charging periods and charging
    seconds."""
    # A meter that was replaced or reset mid-session must not produce negative energy.
    energy_wh = max(tx["meter_stop"] - tx["meter_start"], 0)
    periods = billing.charging_periods(tx["start_time"], tx["meter_start"], samples,
                                       tx["stop_time"], tx["meter_start"] + energy_wh,
                                       tx["tariff_id"])
    charging_s = billing.charging_seconds(periods, tx["stop_time"])
    cost = billing.compute_cost(tariff, energy_wh, tx["start_time"], tx["stop_time"],
                                charging_s)
    return cost, periods, charging_s


def session_object(cpo: CpoIdentity, tx: RowMapping, samples: list[billing.Sample],
                   connector: RowMapping, tariff: dict[str, Any] | None) -> dict[str, Any]:
    """The OCPI Session of a transaction; a finished one is priced under ``tariff``, exactly
    as its CDR is."""
    periods = billing.charging_periods(tx["start_time"], tx["meter_start"], samples,
                                       tx["stop_time"], tx["meter_stop"], tx["tariff_id"])
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
        "last_updated": tx["last_updated"]}
    if tx["stop_time"] is not None:
        cost, _, _ = finished_cost(tx, samples, tariff)
        obj["total_cost"] = billing.price_dict(cost.total)
    return dump(m.Session.model_validate(obj))


def session_patch(session: dict[str, Any]) -> dict[str, Any]:
    """What a PATCH of a running session carries: its progress."""
    return {key: session[key] for key in ("kwh", "charging_periods", "last_updated")
            if key in session}


def cdr_object(cpo: CpoIdentity, tx: RowMapping, evse: RowMapping, location: RowMapping,
               connector: RowMapping, samples: list[billing.Sample],
               tariff: dict[str, Any] | None) -> dict[str, Any]:
    """The OCPI CDR of a completed transaction at ``evse`` of ``location``."""
    energy_wh = max(tx["meter_stop"] - tx["meter_start"], 0)
    cost, periods, charging_s = finished_cost(tx, samples, tariff)
    session_s = (tx["stop_time"] - tx["start_time"]).total_seconds()
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
        "total_cost": billing.price_dict(cost.total),
        "total_fixed_cost": billing.price_dict(cost.fixed),
        "total_energy": Decimal(energy_wh) / 1000,
        "total_energy_cost": billing.price_dict(cost.energy),
        "total_time": billing.hours_between(tx["start_time"], tx["stop_time"]),
        "total_time_cost": billing.price_dict(cost.time),
        "total_parking_time": billing.seconds_to_hours(session_s - charging_s),
        "last_updated": utcnow()}
    return dump(m.CDR.model_validate(obj))
