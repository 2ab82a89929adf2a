"""Build MeterValues from a :class:`~chargerfw.drivers.types.MeterSample`.

This is the record format of the outbox and of StopTxn data: the OCPP 1.6 MeterValue spelling
(the store's transaction payloads use 1.6 spellings too). The 1.6 adapter sends it as it is;
an adapter for another version translates it when it builds its requests."""

from __future__ import annotations

from typing import Any

from chargerfw.drivers.types import MeterSample, whole_wh
from chargerfw.timestamps import iso_utc

PHASES = ("L1", "L2", "L3")


def _number(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def sampled_values(sample: MeterSample, measurands: list[str], context: str, phases: int = 3,
                   temperature_c: float | None = None,
                   offered_current_a: float | None = None) -> list[dict[str, Any]]:
    """One SampledValue per measurand (per phase for Current.Import and Voltage) that the
    sample has. Measurands the sample lacks are left out rather than sent as made-up zeros.

    ``offered_current_a`` is what the pilot offers now (0 without PWM): Current.Offered, and
    Power.Offered = that current x the mean measured phase voltage x the connector's phases
    (left out when the meter measures no voltage: no nominal voltage is made up)."""
    values: list[dict[str, Any]] = []

    def add(measurand: str, value: float | None, unit: str | None, phase: str | None = None,
            location: str = "Outlet") -> None:
        if value is None:
            return
        entry: dict[str, Any] = {"value": _number(value), "context": context, "measurand": measurand}
        if phase:
            entry["phase"] = phase
        entry["location"] = location
        if unit:
            entry["unit"] = unit
        values.append(entry)

    per_phase = PHASES[: 1 if phases == 1 else 3]
    for measurand in measurands:
        if measurand == "Energy.Active.Import.Register":
            add(measurand, float(whole_wh(sample.energy_import_wh)), "Wh")
        elif measurand == "Energy.Active.Export.Register":
            export = sample.energy_export_wh
            add(measurand, None if export is None else float(whole_wh(export)), "Wh")
        elif measurand == "Power.Active.Import":
            power = sample.power_w
            if power is None:
                parts = [p for p in (sample.power_l1_w, sample.power_l2_w, sample.power_l3_w)
                         if p is not None]
                power = sum(parts) if parts else None
            add(measurand, power, "W")
        elif measurand == "Current.Import":
            for phase in per_phase:
                add(measurand, getattr(sample, f"current_{phase.lower()}_a"), "A", phase)
        elif measurand == "Voltage":
            for phase in per_phase:
                add(measurand, getattr(sample, f"voltage_{phase.lower()}_v"), "V", f"{phase}-N")
        elif measurand == "Frequency":
            add(measurand, sample.frequency_hz, None)  # 1.6 UnitOfMeasure has no Hz
        elif measurand == "Temperature":
            add(measurand, temperature_c, "Celsius", location="Body")
        elif measurand == "Current.Offered":
            add(measurand, offered_current_a, "A")
        elif measurand == "Power.Offered":
            volts = sample.mean_voltage_v()
            add(measurand, None if offered_current_a is None or volts is None
                else offered_current_a * volts * len(per_phase), "W")
    return values


def meter_value(sample: MeterSample, measurands: list[str], context: str, phases: int = 3,
                temperature_c: float | None = None, at: float | None = None,
                offered_current_a: float | None = None) -> dict[str, Any] | None:
    """A MeterValue (timestamp + sampledValue) or None if nothing asked for is measured."""
    values = sampled_values(sample, measurands, context, phases, temperature_c,
                            offered_current_a)
    if not values:
        return None
    return {"timestamp": iso_utc(sample.timestamp if at is None else at), "sampledValue": values}
