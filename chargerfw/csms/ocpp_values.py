"""What the backend makes of values a charger sends that are well-formed but absurd: each has
one defined outcome, with at most one log line per message.

- A connector id below what the message allows (StatusNotification and MeterValues: 0 is the
  whole charger; StartTransaction: 1 and up) is refused with PropertyConstraintViolation and
  nothing is stored.
- A timestamp before 2000 or more than a day ahead of the backend's clock is the charger's clock
  being wrong, not the time of the event: the backend's receive time is used instead (a
  StatusNotification's optional timestamp is dropped).
- A meterStop below meterStart ends the session at its last reading (the store keeps why).
- A sampled value that is not a number is refused with FormationViolation (nothing stored); one
  that is not finite (NaN, Infinity) or beyond any meter (|value| > 10^12) is dropped from the
  samples, the rest of the message counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.exceptions import FormationViolationError, PropertyConstraintViolationError

from chargerfw.csms import billing
from chargerfw.logs import get_logger

log = get_logger(__name__)

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_AHEAD = timedelta(days=1)
MAX_READING = 1e12  # beyond any meter's register, in Wh, W or A


def check_connector_id(connector_id: int, minimum: int) -> None:
    """Refuse a connector id below ``minimum`` (schema-valid, but no connector has it)."""
    if connector_id < minimum:
        raise PropertyConstraintViolationError(
            description=f"connectorId {connector_id} is below {minimum}")


def parse_time(value: str) -> datetime:
    """An OCPP timestamp as aware UTC (a value without offset is UTC); FormationViolation for
    one that is not ISO 8601."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise FormationViolationError(description=f"invalid timestamp {value[:40]!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def plausible(stamp: datetime, received: datetime) -> bool:
    return EARLIEST <= stamp <= received + MAX_AHEAD


def event_time(value: str, charge_point_id: str, what: str,
               received: datetime | None = None) -> datetime:
    """The time of an event the charger reports: its timestamp, or the receive time when its
    clock is clearly wrong (logged)."""
    received = received or datetime.now(UTC)
    stamp = parse_time(value)
    if plausible(stamp, received):
        return stamp
    log.warning("csms.implausible_timestamp", charge_point=charge_point_id, message=what,
                timestamp=value[:40], used=received.isoformat())
    return received


def meter_samples(meter_value: Sequence[dict[str, Any]], charge_point_id: str,
                  received: datetime | None = None) -> list[billing.Sample]:
    """OCPP MeterValue entries (snake_case keys) as samples in Wh / W / A, without readings no
    meter can give (one log line for all that were dropped)."""
    received = received or datetime.now(UTC)
    samples = []
    dropped: list[str] = []
    for entry in meter_value:
        stamp = event_time(entry["timestamp"], charge_point_id, "MeterValues", received)
        for sampled in entry.get("sampled_value", []):
            if sampled.get("format") == "SignedData":
                continue
            try:
                value = float(sampled["value"])
            except ValueError:
                raise FormationViolationError(
                    description=f"sampled value {sampled['value'][:40]!r} is not a number"
                ) from None
            if not math.isfinite(value) or abs(value) > MAX_READING:
                dropped.append(str(sampled["value"])[:20])
                continue
            measurand = sampled.get("measurand", billing.ENERGY_REGISTER)
            unit = sampled.get("unit", "Wh" if measurand.startswith("Energy") else "")
            samples.append(billing.Sample(stamp, measurand, sampled.get("phase", ""),
                                          billing.to_canonical(value, unit)))
    if dropped:
        log.warning("csms.implausible_readings_dropped", charge_point=charge_point_id,
                    count=len(dropped), values=dropped[:5])
    return samples
