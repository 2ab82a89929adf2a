"""`chargerfw status`: what the charger thinks now, from the running service; with the service
stopped, what the store last knew."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import click

from chargerfw import __version__
from chargerfw.cli import config_option
from chargerfw.cli.common import (
    EXIT_UNREACHABLE,
    Station,
    echo_json,
    fail,
    fault_advice_lines,
    fault_dict,
    iso,
    json_option,
    load_station,
    record_dict,
    station_access,
)
from chargerfw.control.access import DirectAccess
from chargerfw.control.api import (
    ControlError,
    CurrentLimitStatus,
    StatusReply,
    StatusRequest,
    encode_reply,
)
from chargerfw.control.client import ControlUnavailable
from chargerfw.hwlock import is_locked
from chargerfw.station.enums import STATION, ChargePointErrorCode
from chargerfw.station.faults import ClearRule
from chargerfw.station.technician import stored_kind

if TYPE_CHECKING:
    from chargerfw.store import Store


def _age(ts: float) -> str:
    seconds = max(0.0, time.time() - ts)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def _num(value: float | None, fmt: str, unit: str) -> str | None:
    return None if value is None else f"{value:{fmt}} {unit}"


def _phases(values: Sequence[float | None], fmt: str, unit: str) -> str | None:
    shown = [f"{v:{fmt}}" for v in values if v is not None]
    return "/".join(shown) + f" {unit}" if shown else None


def limit_line(limit: CurrentLimitStatus) -> str:
    """Which source limits a connector now, and every source's limit."""
    parts = [f"limit by {limit.source.replace('_', ' ')}"
             + (f" ({limit.detail})" if limit.detail else "")]
    if limit.smart_charging_a is not None:
        parts.append(f"smart charging {limit.smart_charging_a:g} A"
                     + (" (offline fallback)" if limit.offline_fallback else ""))
    if limit.thermal_a is not None:
        parts.append(f"thermal {limit.thermal_a:g} A")
    parts.append(f"hardware {limit.hardware_max_a:g} A")
    return "  ".join(parts)


def status_lines(status: StatusReply) -> list[str]:
    """The human view of the service's status."""
    lines = [f"station    {status.station}  firmware {status.firmware_version}"
             f"  hardware {status.hardware}"
             + ("" if status.available else "  (station Unavailable)")]
    backend, link = status.backend, status.backend.link
    parts = [f"backend    {link.state}", backend.url or link.url]
    if backend.registration:
        parts.append(f"boot {backend.registration}")
    if link.connected_since:
        parts.append(f"since {iso(link.connected_since)}")
    last = max((t for t in (link.last_frame_in_at, link.last_frame_out_at) if t is not None),
               default=None)
    if last:
        parts.append(f"last message {_age(last)}")
    if link.last_pong_latency_s is not None:
        parts.append(f"ping {link.last_pong_latency_s * 1000:.0f} ms")
    elif link.ping_interval_s == 0:
        parts.append("ping off")
    if link.last_error and link.state != "connected":
        parts.append(f"last error: {link.last_error}")
    if backend.clock_offset_s is not None:
        parts.append(f"clock offset {backend.clock_offset_s:+.1f} s")
    lines.append("  ".join(p for p in parts if p))
    lines.append(f"outbox     {status.outbox.pending} waiting, {status.outbox.dead} dead")
    firmware = status.firmware
    if firmware is not None and firmware.phase != "idle":
        line = f"firmware   update {firmware.status} ({firmware.phase})"
        if firmware.bytes is not None:
            line += f"  {firmware.bytes} bytes" + (
                f" of {firmware.total} ({firmware.percent:g} %)"
                if firmware.total and firmware.percent is not None else "")
        if firmware.version:
            line += f"  release {firmware.version}"
        if firmware.trial_deadline is not None:
            line += f"  on trial until {iso(firmware.trial_deadline)}"
        lines.append(line)
    for c in status.connectors:
        head = f"connector {c.id}  {c.status.value}  pilot {c.pilot.value}"
        if c.error_code is not ChargePointErrorCode.NO_ERROR:
            head += f"  error {c.error_code.value}"
            if c.vendor_error_code:
                head += f" ({c.vendor_error_code})"
        head += f"  contactor {'closed' if c.contactor_closed else 'open'}"
        if c.current_limit_a is not None:
            head += f"  offering {c.current_limit_a:g} A"
        lines.append(head)
        if c.limit is not None:
            lines.append("  " + limit_line(c.limit))
        tx = c.transaction
        if tx is not None:
            lines.append("  transaction " + "  ".join(filter(None, [
                str(tx.transaction_id) if tx.transaction_id is not None else "(id pending)",
                f"idTag {tx.id_tag}",
                f"since {iso(tx.started_at) or '?'}",
                _num(tx.energy_wh / 1000, ".3f", "kWh"),
            ])))
        meter = c.meter
        if meter is not None:
            lines.append("  meter " + "  ".join(filter(None, [
                _num(meter.energy_import_wh / 1000, ".3f", "kWh"),
                _num(meter.power_w, ".0f", "W"),
                _phases(meter.voltage_v, ".0f", "V"),
                _phases(meter.current_a, ".1f", "A"),
                _num(meter.frequency_hz, ".2f", "Hz"),
                f"({meter.age_s:.0f} s old)",
            ])))
        else:
            lines.append("  meter  no sample yet")
    if status.reader is not None:
        lines.append(f"reader     {status.reader.name} "
                     f"{'present' if status.reader.available else 'NOT AVAILABLE'}")
    if status.faults:
        lines.append("faults     " + ", ".join(
            f"{f.kind.value}@{'station' if f.connector == STATION else f.connector}"
            f" ({'technician' if f.clears is ClearRule.TECHNICIAN else 'self-clearing'})"
            for f in status.faults))
        for kind in dict.fromkeys(f.kind for f in status.faults):
            lines.extend(fault_advice_lines(kind))
    else:
        lines.append("faults     none active")
    return lines


def store_summary(store: Store | None) -> dict[str, Any]:
    """What the store knows that a technician asks first."""
    if store is None:
        return {"available": False}
    outbox = store.outbox_all(limit=1000)
    return {
        "available": True,
        "open_transactions": [record_dict(t, ("started_at", "last_meter_at", "stopped_at"))
                              for t in store.open_transactions()],
        "outbox_pending": sum(1 for m in outbox if m.state == "pending"),
        "outbox_dead": sum(1 for m in outbox if m.state == "dead"),
        "active_faults": [fault_dict(f) for f in store.faults(active_only=True)],
    }


def _stopped(station: Station, why: str, as_json: bool) -> NoReturn:
    """The service does not answer: say so, and show what the store holds (exit 3)."""
    holder = is_locked()
    if holder is not None:
        why += (f"; the hardware lock is held by {holder.describe()}: running but not "
                "answering? see journalctl -u chargerfw")
    store = station.open_store()
    try:
        summary = store_summary(store)
    finally:
        if store is not None:
            store.close()
    if as_json:
        echo_json({"service": "stopped", "reason": why, "station": station.config.station.id,
                   "store": summary})
    else:
        click.echo(f"service    NOT RUNNING ({why})")
        click.echo(f"station    {station.config.station.id}  firmware {__version__}")
        if not summary["available"]:
            click.echo(f"store      none at {station.store_path}")
        else:
            click.echo(f"store      {station.store_path} (last known state)")
            for tx in summary["open_transactions"]:
                click.echo(f"  open transaction {tx['local_id']} on connector "
                           f"{tx['connector_id']} idTag {tx['id_tag']} since {tx['started_at']}"
                           " (ends as PowerLoss when the service starts)")
            click.echo(f"outbox     {summary['outbox_pending']} waiting, "
                       f"{summary['outbox_dead']} dead")
            faults = summary["active_faults"]
            click.echo("faults     " + (", ".join(f"{f['code']}@{f['connector_id']}"
                                                   for f in faults) or "none active"))
            for code in dict.fromkeys(f["code"] for f in faults):
                kind = stored_kind(code)
                if kind is not None:
                    for line in fault_advice_lines(kind):
                        click.echo(line)
        click.echo("start it:  systemctl start chargerfw   (logs: journalctl -u chargerfw)")
    raise SystemExit(EXIT_UNREACHABLE)


@click.command("status")
@config_option
@json_option
def status_command(config_path: str, as_json: bool) -> None:
    """What the charger thinks now: connectors, pilot, transaction, backend link, outbox,
    faults, meter. With the service stopped: says so (exit 3) and shows what the store holds."""
    access = station_access(config_path)
    if isinstance(access, DirectAccess):
        _stopped(load_station(config_path), access.reason, as_json)
    try:
        status = access.status()
    except ControlUnavailable as exc:
        _stopped(load_station(config_path), str(exc), as_json)
    except ControlError as exc:
        fail(f"the service answered status with an error: {exc.message}", EXIT_UNREACHABLE)
    if as_json:
        echo_json({"service": "running", "status": encode_reply(StatusRequest, status)})
    else:
        for line in status_lines(status):
            click.echo(line)
