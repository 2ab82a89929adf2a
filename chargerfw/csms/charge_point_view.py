"""What an operator sees of the charge points (`chargerfw csms cp list|show` and the admin
API): registration, EVSEs and statuses, connection (with its security profile), firmware,
and for one charger its latest events and the certificate the fleet CA signed for it that it
accepted last. JSON-ready: times are ISO 8601 UTC strings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import RowMapping

from chargerfw.csms.store import Store
from chargerfw.csms.store.charger_files import FIRMWARE, SIGNED_FIRMWARE, STATUS_KINDS

LATEST_EVENTS = 10


def iso_utc(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event_json(row: RowMapping) -> dict[str, Any]:
    """One event as the admin API and `cp show` give it; ``id`` is its cursor."""
    return {"id": row["id"], "at": iso_utc(row["at"]), "kind": row["kind"],
            "data": row["data"]}


def _json_ready(point: dict[str, Any]) -> dict[str, Any]:
    return {key: iso_utc(value) if isinstance(value, datetime) else value
            for key, value in point.items()}


def charge_points_view(store: Store, charge_point_id: str | None = None
                       ) -> list[dict[str, Any]]:
    """Every charge point, or only ``charge_point_id`` (an empty list when unknown) with its
    latest events, file statuses and uploaded files added."""
    points = [_json_ready(p) for p in store.list_charge_points()
              if charge_point_id is None or p["id"] == charge_point_id]
    if charge_point_id is not None:
        for point in points:
            point["latest_events"] = [
                event_json(row) for row in
                store.latest_charge_point_events(charge_point_id, LATEST_EVENTS)]
            point.update(_files_view(store, charge_point_id))
            point["certificate"] = certificate_view(store, charge_point_id)
    return points


def certificate_view(store: Store, charge_point_id: str) -> dict[str, Any] | None:
    """The charger's current certificate from the fleet CA (the newest it accepted): serial,
    SHA-256 fingerprint, subject, validity, when issued; None when it has none."""
    row = store.current_certificate(charge_point_id)
    if row is None:
        return None
    return {"serial": row["serial"], "fingerprint": row["fingerprint"],
            "subject": row["subject"], "not_before": iso_utc(row["not_before"]),
            "not_after": iso_utc(row["not_after"]), "issued_at": iso_utc(row["issued_at"])}


def _files_view(store: Store, charge_point_id: str) -> dict[str, Any]:
    """The status history of the charger's firmware updates, diagnostics and log uploads (per
    kind, oldest first), its latest firmware status whether signed or not, and the files it
    uploaded."""
    statuses = store.file_statuses(charge_point_id)
    history = {kind: [{"status": row["status"], "request_id": row["request_id"],
                       "reported_at": iso_utc(row["reported_at"])}
                      for row in statuses if row["kind"] == kind] for kind in STATUS_KINDS}
    firmware = [row for row in statuses if row["kind"] in (FIRMWARE, SIGNED_FIRMWARE)]
    latest = None if not firmware else {
        "status": firmware[-1]["status"], "signed": firmware[-1]["kind"] == SIGNED_FIRMWARE,
        "request_id": firmware[-1]["request_id"],
        "reported_at": iso_utc(firmware[-1]["reported_at"])}
    files = [_json_ready(dict(row)) for row in store.received_files(charge_point_id)]
    return {"file_statuses": history, "firmware_status": latest, "received_files": files}
