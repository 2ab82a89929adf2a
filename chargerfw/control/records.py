"""Store records as JSON-ready dicts, for the technician's ``--json`` output and the support
bundle alike."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from chargerfw.station.faults import FAULT_SPECS
from chargerfw.station.technician import stored_kind

if TYPE_CHECKING:
    from chargerfw.store import FaultRecord


def iso(ts: float | None) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_dict(record: Any, time_fields: Iterable[str] = ()) -> dict[str, Any]:
    """A store record as JSON-ready dict, with the named POSIX times as ISO 8601."""
    data = asdict(record)
    for name in time_fields:
        if name in data:
            data[name] = iso(data[name])
    return data


def fault_dict(fault: FaultRecord) -> dict[str, Any]:
    """A stored fault for ``--json``: its record, whether it is active, and what the fault
    catalogue says it means and what to do (None for a code this firmware does not know)."""
    data = record_dict(fault, ("raised_at", "cleared_at"))
    data["state"] = "active" if fault.cleared_at is None else "cleared"
    kind = stored_kind(fault.code)
    data["description"] = FAULT_SPECS[kind].description if kind else None
    data["hint"] = FAULT_SPECS[kind].hint if kind else None
    return data
