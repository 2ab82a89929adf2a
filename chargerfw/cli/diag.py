"""The technician's view: `chargerfw status`, `faults`, `ocpp log`, `queue`, `selftest`,
`support-bundle`.

What comes from where: the running service answers on its control socket (live state); the
store (SQLite in WAL mode, readable while the service writes) holds the history: faults,
transactions, the outbox and the OCPP frame log. When the service is down, the commands that
need hardware take the hardware lock and drive it themselves.

Exit status of every command: 0 ok; 1 a check failed or the command refused; 2 bad options
or an invalid config; 3 the service, the store or a device cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

import click

from chargerfw import __version__
from chargerfw.cli import config_option, load_config_or_exit, main
from chargerfw.config import StationConfig
from chargerfw.diagnostics import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    Bundle,
    BundleFile,
    CheckResult,
    CheckStatus,
    ServiceError,
    ServiceUnavailable,
    backend_check,
    call_service,
    check_clock,
    check_disk,
    check_meter_sample,
    control_socket_path,
    failed,
    iso,
    overall_ok,
    passed,
    probe_backend,
    record_dict,
    redact,
    redact_toml_text,
    skipped,
)
from chargerfw.drivers.board import Board, build_board
from chargerfw.hwlock import HardwareBusy, HardwareLock, HardwareLockError, is_locked
from chargerfw.ocpp.connection import redact_frame
from chargerfw.store import Store, StoreError

STATION_CONNECTOR_ID = 0  # the store's connector id for station-wide faults (RCD, e-stop)

json_option = click.option("--json", "as_json", is_flag=True, help="print one JSON document")

# The board the direct-hardware path builds; a test swaps it to hand in a prepared simulation.
open_board: Callable[[StationConfig], Board] = build_board


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    raise SystemExit(code)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


# -- station context -------------------------------------------------------------------------------
@dataclass
class Station:
    """The config a command was given, and the store it names."""

    config: StationConfig
    config_path: Path

    @property
    def store_path(self) -> Path:
        return Path(self.config.storage.path)

    def open_store(self) -> Store | None:
        """The store, or None when the file does not exist yet (never creates one)."""
        if not self.store_path.exists():
            return None
        try:
            return Store(self.store_path)
        except (StoreError, OSError) as exc:
            fail(f"cannot open the store {self.store_path}: {exc}", EXIT_UNREACHABLE)
        except Exception as exc:  # sqlite3.DatabaseError: not a database, locked too long
            fail(f"cannot read the store {self.store_path}: {exc}", EXIT_UNREACHABLE)

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        store = self.open_store()
        if store is None:
            fail(f"no store at {self.store_path} yet (the service has never run with this "
                 "config)", EXIT_UNREACHABLE)
        try:
            yield store
        finally:
            store.close()


def load_station(config_path: str) -> Station:
    return Station(load_config_or_exit(config_path), Path(config_path))


# -- service / hardware paths ----------------------------------------------------------------------
def service_or_none(method: str = "status", **params: Any) -> Any:
    """The service's answer, or None when it is not running."""
    try:
        return call_service(method, **params)
    except ServiceUnavailable:
        return None


@contextlib.contextmanager
def direct_hardware_lock(owner: str) -> Iterator[HardwareLock]:
    """The hardware lock for this command, or exit saying who holds it."""
    lock = HardwareLock(owner)
    try:
        lock.acquire()
    except HardwareBusy as exc:
        holder = exc.holder.describe() if exc.holder else "another process"
        fail(f"the hardware is held by {holder}. If that is the chargerfw service, it does not "
             f"answer on {control_socket_path()}: check `systemctl status chargerfw`; while it "
             "runs, commands go through it", EXIT_FAILED)
    except HardwareLockError as exc:
        fail(str(exc), EXIT_UNREACHABLE)
    try:
        yield lock
    finally:
        lock.release()


@contextlib.contextmanager
def direct_hardware(config: StationConfig, owner: str) -> Iterator[Board]:
    """The board, built by this process under the hardware lock (service not running)."""
    with direct_hardware_lock(owner):
        try:
            board = open_board(config)
        except Exception as exc:  # GPIO library missing, I2C bus absent, pin busy
            fail(f"cannot open the station hardware: {type(exc).__name__}: {exc}",
                 EXIT_UNREACHABLE)
        try:
            yield board
        finally:
            board.close()  # opens every contactor, releases pins and buses


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


def fault_dict(fault: Any) -> dict[str, Any]:
    data = record_dict(fault, ("raised_at", "cleared_at"))
    data["state"] = "active" if fault.cleared_at is None else "cleared"
    return data


# -- status ----------------------------------------------------------------------------------------
def _age(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    seconds = max(0.0, time.time() - ts)
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def status_connectors(status: dict[str, Any]) -> list[dict[str, Any]]:
    connectors = status.get("connectors") or []
    if isinstance(connectors, dict):
        connectors = [{"id": k, **v} for k, v in connectors.items() if isinstance(v, dict)]
    return [c for c in connectors if isinstance(c, dict)]


def _num(value: Any, fmt: str, unit: str) -> str | None:
    return f"{value:{fmt}} {unit}" if isinstance(value, int | float) else None


def _phases(values: Any, fmt: str, unit: str) -> str | None:
    if isinstance(values, int | float):
        return _num(values, fmt, unit)
    if isinstance(values, list):
        shown = [f"{v:{fmt}}" for v in values if isinstance(v, int | float)]
        return "/".join(shown) + f" {unit}" if shown else None
    return None


def _status_lines(status: dict[str, Any]) -> list[str]:
    """The human view of the service's ``status`` result."""
    lines = []
    station = status.get("station")
    station_id = station.get("id", "?") if isinstance(station, dict) else station
    lines.append(f"station    {station_id}  firmware {status.get('firmware_version', '?')}"
                 f"  hardware {status.get('hardware', '?')}"
                 + ("" if status.get("available", True) else "  (station Unavailable)"))
    backend = status.get("backend") if isinstance(status.get("backend"), dict) else {}
    link = backend.get("link") if isinstance(backend.get("link"), dict) else {}
    if backend:
        state = link.get("state", "online" if backend.get("online") else "?")
        parts = [f"backend    {state}", str(backend.get("url") or link.get("url") or "")]
        if backend.get("registration"):
            parts.append(f"boot {backend['registration']}")
        if link.get("connected_since"):
            parts.append(f"since {iso(link['connected_since'])}")
        last = max((t for t in (link.get("last_frame_in_at"), link.get("last_frame_out_at"))
                    if isinstance(t, int | float)), default=None)
        if last:
            parts.append(f"last message {_age(last)}")
        if isinstance(link.get("last_pong_latency_s"), int | float):
            parts.append(f"ping {link['last_pong_latency_s'] * 1000:.0f} ms")
        elif link.get("ping_interval_s") == 0:
            parts.append("ping off")
        if link.get("last_error") and state != "connected":
            parts.append(f"last error: {link['last_error']}")
        if isinstance(backend.get("clock_offset_s"), int | float):
            parts.append(f"clock offset {backend['clock_offset_s']:+.1f} s")
        lines.append("  ".join(p for p in parts if p))
    outbox = status.get("outbox")
    if isinstance(outbox, dict):
        lines.append(f"outbox     {outbox.get('pending', '?')} waiting, {outbox.get('dead', 0)} dead")
    for c in status_connectors(status):
        head = (f"connector {c.get('id', '?')}  {c.get('status', '?')}"
                f"  pilot {c.get('pilot', '?')}")
        if c.get("error_code") not in (None, "NoError"):
            head += f"  error {c['error_code']}"
            if c.get("vendor_error_code"):
                head += f" ({c['vendor_error_code']})"
        if "contactor_closed" in c:
            head += f"  contactor {'closed' if c['contactor_closed'] else 'open'}"
        if isinstance(c.get("current_limit_a"), int | float):
            head += f"  offering {c['current_limit_a']:g} A"
        lines.append(head)
        tx = c.get("transaction")
        if isinstance(tx, dict):
            lines.append("  transaction " + "  ".join(filter(None, [
                f"{tx.get('transaction_id') if tx.get('transaction_id') is not None else '(id pending)'}",
                f"idTag {tx.get('id_tag', '?')}",
                f"since {iso(tx.get('started_at')) or '?'}",
                _num(tx.get("energy_wh") / 1000 if isinstance(tx.get("energy_wh"), int | float)
                     else None, ".3f", "kWh"),
            ])))
        meter = c.get("meter")
        if isinstance(meter, dict):
            lines.append("  meter " + "  ".join(filter(None, [
                _num(meter["energy_import_wh"] / 1000, ".3f", "kWh")
                if isinstance(meter.get("energy_import_wh"), int | float) else None,
                _num(meter.get("power_w"), ".0f", "W"),
                _phases(meter.get("voltage_v"), ".0f", "V"),
                _phases(meter.get("current_a"), ".1f", "A"),
                _num(meter.get("frequency_hz"), ".2f", "Hz"),
                f"({meter['age_s']:.0f} s old)" if isinstance(meter.get("age_s"), int | float)
                else None,
            ])))
        elif "meter" in c:
            lines.append("  meter  no sample yet")
    reader = status.get("reader")
    if isinstance(reader, dict):
        lines.append(f"reader     {reader.get('name', '?')} "
                     f"{'present' if reader.get('available') else 'NOT AVAILABLE'}")
    faults = [f for f in (status.get("faults") or []) if isinstance(f, dict)]
    if faults:
        lines.append("faults     " + ", ".join(
            f"{f.get('kind', f.get('code', '?'))}"
            f"@{'station' if f.get('connector') is None else f.get('connector')}"
            f" ({'technician' if f.get('clears') == 'technician' else 'self-clearing'})"
            for f in faults))
    else:
        lines.append("faults     none active")
    return lines


@main.command("status")
@config_option
@json_option
def status_command(config_path: str, as_json: bool) -> None:
    """What the charger thinks now: connectors, pilot, transaction, backend link, outbox,
    faults, meter. With the service stopped: says so (exit 3) and shows what the store holds."""
    try:
        status = call_service("status")
    except ServiceUnavailable as exc:
        status, why = None, str(exc)
    except ServiceError as exc:
        fail(f"the service answered status with an error: {exc.message}", EXIT_UNREACHABLE)
    if status is not None:
        if as_json:
            echo_json({"service": "running", "status": status})
        else:
            for line in _status_lines(status if isinstance(status, dict) else {}):
                click.echo(line)
        return
    holder = is_locked()
    if holder is not None:
        why += (f"; the hardware lock is held by {holder.describe()}: running but not "
                "answering? see journalctl -u chargerfw")
    station = load_station(config_path)
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
        click.echo("start it:  systemctl start chargerfw   (logs: journalctl -u chargerfw)")
    raise SystemExit(EXIT_UNREACHABLE)


# -- faults ----------------------------------------------------------------------------------------
def _clear_rule(code: str) -> str | None:
    """How a fault of this code clears, from the station's fault table (None: unknown code)."""
    from chargerfw.station.faults import FAULT_SPECS, ClearRule, FaultKind

    try:
        rule = FAULT_SPECS[FaultKind(code)].clear_rule
    except ValueError:
        return None
    return {
        ClearRule.CONDITION_GONE: "it clears by itself once its condition is gone",
        ClearRule.VEHICLE_UNPLUGGED: "it clears by itself once the condition is gone and the "
                                     "vehicle is unplugged",
        ClearRule.TECHNICIAN: "technician",
    }[rule]


@main.group("faults", invoke_without_command=True)
@config_option
@click.option("--active", is_flag=True, help="only faults that are still active")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
@click.pass_context
def faults_group(ctx: click.Context, config_path: str, active: bool, limit: int,
                 as_json: bool) -> None:
    """Fault history (time, code, connector, active or cleared); `faults clear` acknowledges."""
    ctx.obj = {"config_path": config_path}
    if ctx.invoked_subcommand is not None:
        return
    station = load_station(config_path)
    with station.store() as store:
        faults = [fault_dict(f) for f in store.faults(active_only=active, limit=limit)]
    if as_json:
        echo_json(faults)
        return
    if not faults:
        click.echo("no faults recorded" if not active else "no active faults")
        return
    click.echo(f"{'raised (UTC)':<21} {'code':<27} {'conn':>4}  {'state':<28} who clears")
    for f in faults:
        state = "ACTIVE" if f["state"] == "active" else f"cleared {f['cleared_at']}"
        who = "technician" if f["needs_technician"] else "self"
        click.echo(f"{f['raised_at']:<21} {f['code']:<27} {f['connector_id']:>4}  "
                   f"{state:<28} {who}" + (f"  ({f['detail']})" if f["detail"] else ""))


def _condition_still_present(config: StationConfig, code: str, connector_id: int) -> str | None:
    """With the service stopped: read the hardware for the faults a technician clears."""
    if code not in ("contactor_welded", "rcd_trip_repeated"):
        return None
    with direct_hardware(config, "chargerfw faults clear") as board:
        if code == "contactor_welded":
            devices = board.connectors.get(connector_id)
            if devices is None:
                return f"no connector {connector_id} in the config"
            if devices.contactor.feedback_closed:
                return "the mirror contact still reads closed with the coil off: still welded"
        elif board.rcm is not None and board.rcm.refresh():
            return "the RCM input still reads tripped"
    return None


@faults_group.command("clear")
@click.argument("code")
@config_option
@click.option("--connector", "connector_id", type=click.IntRange(0, 2),
              help="connector of the fault (0 = whole station) [default: the only active one]")
@json_option
@click.pass_context
def faults_clear(ctx: click.Context, code: str, config_path: str, connector_id: int | None,
                 as_json: bool) -> None:
    """Acknowledge a fault that needs a technician (welded contactor, repeated RCD trips,
    internal error). Faults that clear by themselves are refused, with the reason."""
    if ctx.get_parameter_source("config_path") is click.core.ParameterSource.DEFAULT:
        config_path = ctx.obj["config_path"]  # `faults -c FILE clear CODE`
    station = load_station(config_path)
    with station.store() as store:
        active = [f for f in store.faults(active_only=True, limit=10000) if f.code == code]
    if connector_id is not None:
        active = [f for f in active if f.connector_id == connector_id]
    if not active:
        where = f" on connector {connector_id}" if connector_id is not None else ""
        fail(f"no active fault {code!r}{where} (see `chargerfw faults --active`)", EXIT_FAILED)
    if len(active) > 1:
        ids = ", ".join(str(f.connector_id) for f in active)
        fail(f"{code} is active on connectors {ids}: pick one with --connector", EXIT_USAGE)
    fault = active[0]
    if not fault.needs_technician:
        rule = _clear_rule(code) or "it is not a technician-acknowledged fault"
        fail(f"{code} on connector {fault.connector_id} is not cleared by hand: {rule}",
             EXIT_FAILED)
    via = "service"
    try:
        call_service("fault.clear", kind=code,
                     connector=None if fault.connector_id == STATION_CONNECTOR_ID
                     else fault.connector_id)
    except ServiceError as exc:
        fail(f"the station refused to clear {code}: {exc.message}", EXIT_FAILED)
    except ServiceUnavailable:
        via = "store"
        problem = _condition_still_present(station.config, code, fault.connector_id)
        if problem:
            fail(f"not cleared: {problem}", EXIT_FAILED)
        with station.store() as store:
            store.fault_clear(code, fault.connector_id)
    result = {"cleared": code, "connector_id": fault.connector_id, "via": via}
    if as_json:
        echo_json(result)
    else:
        click.echo(f"cleared {code} on connector {fault.connector_id}"
                   + (" (service stopped: cleared in the store)" if via == "store" else ""))


# -- ocpp log, queue -------------------------------------------------------------------------------
@main.group("ocpp")
def ocpp_group() -> None:
    """OCPP link tools."""


@ocpp_group.command("log")
@config_option
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@click.option("--direction", type=click.Choice(["in", "out"]), help="only frames in or out")
@json_option
def ocpp_log(config_path: str, limit: int, direction: str | None, as_json: bool) -> None:
    """The last OCPP frames in and out (from the store; secrets redacted)."""
    station = load_station(config_path)
    with station.store() as store:
        frames = store.frame_log(limit=None if direction else limit)
    if direction:
        frames = [f for f in frames if f.direction == direction][-limit:]
    # Redacted again here: a frame written by an older firmware may predate redaction.
    rows = [{"seq": f.seq, "at": iso(f.at), "direction": f.direction,
             "frame": redact_frame(f.frame)} for f in frames]
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no OCPP frames recorded")
    for r in rows:
        arrow = "<-" if r["direction"] == "in" else "->"
        click.echo(f"{r['at']} {arrow} {r['frame']}")


@main.command("queue")
@config_option
@click.option("--all", "show_all", is_flag=True, help="also delivered messages (recent ones)")
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@json_option
def queue_command(config_path: str, show_all: bool, limit: int, as_json: bool) -> None:
    """The outbox: transaction messages waiting for the backend (and dead ones)."""
    station = load_station(config_path)
    with station.store() as store:
        messages = store.outbox_all(limit=limit)
    if not show_all:
        messages = [m for m in messages if m.state != "delivered"]
    rows = [record_dict(m, ("created_at", "next_attempt_at")) for m in messages]
    if as_json:
        echo_json(rows)
        return
    pending = sum(1 for m in messages if m.state == "pending")
    dead = sum(1 for m in messages if m.state == "dead")
    click.echo(f"{pending} pending, {dead} dead" + (" (nothing waiting)" if not rows else ""))
    for r in rows:
        tx = r["backend_tx_id"] if r["backend_tx_id"] is not None else "-"
        click.echo(f"#{r['seq']:<5} {r['action']:<16} {r['state']:<9} tx {r['local_tx_id']}/"
                   f"{tx}  attempts {r['attempts']} sends {r['sends']}  queued {r['created_at']}"
                   + (f"  last error: {r['last_error']}" if r["last_error"] else ""))


# -- selftest --------------------------------------------------------------------------------------
async def _read_meter_sample(section: Any) -> Any:
    from chargerfw.drivers.meter import EnergyMeter, quiet_pymodbus

    quiet_pymodbus()
    meter = EnergyMeter.from_config(section)
    async with meter:
        return await meter.read_sample()


def meter_checks_direct(config: StationConfig) -> list[CheckResult]:
    from chargerfw.drivers.meter import MeterReadError
    from chargerfw.drivers.types import MeterSample

    results = []
    for c in config.connector:
        name = f"meter {c.id}"
        try:
            sample = asyncio.run(_read_meter_sample(c.meter))
        except MeterReadError as exc:
            hint = ("check RS-485 wiring (A/B), termination, unit id, baud rate"
                    if c.meter.transport == "rtu" else
                    f"check the network path to {c.meter.host}:{c.meter.tcp_port} and the "
                    "Modbus TCP gateway")
            results.append(failed(name, f"{c.meter.model}: {exc.kind}: {exc.detail}",
                                  hint + "; `chargerfw meter read` shows the raw error"))
            continue
        assert isinstance(sample, MeterSample)
        results.append(check_meter_sample(sample, name))
    return results


def status_meter(status: dict[str, Any], connector_id: int) -> dict[str, Any] | None:
    for c in status_connectors(status):
        if str(c.get("id")) == str(connector_id) and isinstance(c.get("meter"), dict):
            return c["meter"]
    return None


def sample_from_dict(data: dict[str, Any]) -> Any:
    """A MeterSample from a service answer: MeterSample's own field names, or the status
    view (``voltage_v`` / ``current_a`` as per-phase lists). TypeError/ValueError if unusable."""
    from chargerfw.drivers.types import MeterSample

    fields = {k: v for k, v in data.items() if k in MeterSample.__slots__}
    for key, prefix, unit in (("voltage_v", "voltage", "v"), ("current_a", "current", "a")):
        values = data.get(key)
        if isinstance(values, list):
            for n, value in enumerate(values[:3], start=1):
                fields[f"{prefix}_l{n}_{unit}"] = value
    fields.setdefault("timestamp", time.time() - float(data.get("age_s") or 0))
    if not isinstance(fields.get("energy_import_wh"), int | float):
        raise ValueError(f"no energy_import_wh in {data!r}")
    return MeterSample(**fields)


def meter_checks_service(config: StationConfig, status: dict[str, Any]) -> list[CheckResult]:
    results = []
    for c in config.connector:
        name = f"meter {c.id}"
        try:
            sample = call_service("meter.sample", connector=c.id)
        except ServiceError as exc:
            if not exc.method_missing:
                results.append(failed(name, f"the service has no sample: {exc.message}",
                                      "see `chargerfw faults --active` for meter faults"))
                continue
            sample = status_meter(status, c.id)  # an older service: its status has the values
            if sample is None:
                results.append(skipped(name, "the service reports no meter values"))
                continue
        except ServiceUnavailable as exc:
            results.append(failed(name, f"the service has no sample: {exc}",
                                  "see `chargerfw faults --active` for meter faults"))
            continue
        age = sample.get("age_s") if isinstance(sample, dict) else None
        stale_after = max(10.0, 3 * c.meter.poll_interval_s)
        if isinstance(age, int | float) and age > stale_after:
            results.append(failed(name, f"the service's last sample is {age:.0f} s old "
                                  f"(limit {stale_after:g} s)",
                                  "the meter stopped answering: `chargerfw faults --active`, "
                                  "check its bus"))
            continue
        try:
            results.append(check_meter_sample(sample_from_dict(sample), name))
        except (TypeError, ValueError, AttributeError):
            results.append(failed(name, f"unexpected sample {sample!r}", "report this"))
    return results


async def _probe_reader(section: Any, simulated: bool) -> str:
    from chargerfw.drivers.readers import open_reader

    reader = open_reader(section, simulated=simulated)
    await reader.start(require_reader=True)
    try:
        return reader.name
    finally:
        await reader.stop()


def reader_check_direct(config: StationConfig) -> CheckResult:
    from chargerfw.drivers.readers import ReaderError

    if config.reader is None:
        return skipped("reader", "no [reader] configured")
    try:
        name = asyncio.run(asyncio.wait_for(
            _probe_reader(config.reader, config.hardware == "sim"), 10))
    except (ReaderError, OSError, TimeoutError) as exc:
        return failed("reader", f"{config.reader.type}: {exc}",
                      "check the reader's cable; for PC/SC: systemctl status pcscd, pcsc_scan")
    return passed("reader", f"{config.reader.type} {name}")


def hardware_checks(board: Board) -> list[CheckResult]:
    """Pins and buses readable, contactor mirror consistent (board built by this process)."""
    from chargerfw.drivers.contactor import ContactorFeedback

    results = []
    problems = []
    read = []
    try:
        for name, device in (("rcm", board.rcm), ("emergency stop", board.emergency_stop)):
            if device is not None:
                read.append(f"{name} {'TRIPPED' if device.refresh() else 'ok'}")
        for cid, devices in board.connectors.items():
            if devices.contactor.has_feedback:
                read.append(f"contactor {cid} mirror "
                            f"{'closed' if devices.contactor.feedback_closed else 'open'}")
            if devices.lock is not None and devices.lock.has_feedback:
                read.append(f"lock {cid} {'locked' if devices.lock.feedback_locked else 'unlocked'}")
    except Exception as exc:  # a GPIO read error
        problems.append(f"GPIO: {exc}")
    for cid, devices in board.connectors.items():
        try:
            reading = devices.pilot.read()
            read.append(f"pilot {cid} {reading.state.value} ({reading.high_v:+.1f} V)")
        except Exception as exc:  # I2cError: the ADC does not answer
            problems.append(f"pilot {cid} ADC: {exc}")
        if devices.temperature is not None:
            try:
                read.append(f"temperature {cid} {devices.temperature.read_celsius():.1f} °C")
            except Exception as exc:
                problems.append(f"temperature {cid}: {exc}")
    if problems:
        results.append(failed("pins readable", "; ".join(problems),
                              "check the I2C bus (i2cdetect -y 1), the HAT and its power"))
    else:
        results.append(passed("pins readable", ", ".join(read)))
    tripped = [r for r in read if r.endswith("TRIPPED")]
    if tripped:
        results.append(failed("fault inputs", ", ".join(tripped),
                              "find the cause (RCM, e-stop button) before charging"))
    for cid, devices in board.connectors.items():
        # Just built, the contactor was "commanded" open a moment ago: a disagreeing mirror
        # reads PENDING until the feedback timeout has passed.
        deadline = time.monotonic() + devices.contactor.feedback_timeout_s + 0.2
        feedback = devices.contactor.check_feedback()
        while feedback is ContactorFeedback.PENDING and time.monotonic() < deadline:
            time.sleep(0.02)
            feedback = devices.contactor.check_feedback()
        name = f"contactor {cid} feedback"
        if feedback is ContactorFeedback.NO_FEEDBACK:
            results.append(skipped(name, "no mirror contact configured"))
        elif feedback is ContactorFeedback.OK:
            results.append(passed(name, "mirror contact reads open, coil off"))
        else:
            results.append(failed(name, f"mirror contact reads closed with the coil off: {feedback}",
                                  "welded contactor or wiring fault: isolate the supply, inspect "
                                  "the contactor; `chargerfw test contactor` once repaired"))
    return results


def hardware_checks_service(status: dict[str, Any]) -> list[CheckResult]:
    """With the service running, its status tells what it reads from the pins."""
    connectors = status_connectors(status)
    if not connectors:
        return [skipped("pins readable", "the service's status carries no connector state")]
    read = [f"pilot {c.get('id')} {c.get('pilot')}" for c in connectors]
    results = []
    broken = [f"connector {c.get('id')}" for c in connectors
              if c.get("vendor_error_code") in ("PilotReadFailure", "TemperatureSensorFailure")]
    if broken:
        results.append(failed("pins readable", "the service cannot read the ADC/sensor of "
                              + ", ".join(broken), "check the I2C bus, the HAT and its power"))
    else:
        results.append(passed("pins readable", "service reads " + ", ".join(read)))
    faults = [f for f in (status.get("faults") or []) if isinstance(f, dict)]
    tripped = [str(f.get("kind")) for f in faults
               if f.get("kind") in ("rcd_trip", "rcd_trip_repeated", "emergency_stop")]
    if tripped:
        results.append(failed("fault inputs", ", ".join(tripped),
                              "find the cause (RCM, e-stop button) before charging"))
    for c in connectors:
        name = f"contactor {c.get('id')} feedback"
        bad = sorted(str(f.get("kind")) for f in faults if f.get("connector") == c.get("id")
                     and f.get("kind") in ("contactor_welded", "contactor_failed_to_close"))
        if bad:
            results.append(failed(name, ", ".join(bad),
                                  "inspect the contactor; `chargerfw faults` for history"))
        else:
            results.append(passed(name, "no contactor fault in the service"))
    return results


def config_check(config_path: str) -> tuple[StationConfig | None, CheckResult]:
    from chargerfw.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return None, failed("config", "; ".join(exc.problems),
                            f"fix {config_path} (`chargerfw config validate`)")
    return config, passed("config", f"{config_path}: station {config.station.id}")


def ocpp_keys_check(station: Station) -> CheckResult:
    from chargerfw.config.ocpp_keys import ConfigValueError, key_definitions, normalise

    store = station.open_store()
    if store is None:
        return skipped("ocpp keys", f"no store at {station.store_path} yet")
    try:
        stored = store.config_all()
    finally:
        store.close()
    definitions = key_definitions(len(station.config.connector))
    bad = []
    for key, value in stored.items():
        if key in definitions:
            try:
                normalise(definitions[key], value)
            except ConfigValueError as exc:
                bad.append(str(exc))
    if bad:
        return failed("ocpp keys", "; ".join(bad), "fix with `chargerfw config set KEY VALUE`")
    return passed("ocpp keys", f"{len(stored)} stored key(s) valid")


def run_selftest(config_path: str) -> list[CheckResult]:
    """Every check, in the order a technician reads them."""
    config, result = config_check(config_path)
    results = [result]
    now = datetime.now(UTC)
    if config is None:
        results.append(check_clock(now))
        return results
    station = Station(config, Path(config_path))
    results.append(ocpp_keys_check(station))
    status = service_or_none("status")
    if isinstance(status, dict):
        results.append(passed("service", f"running, control socket {control_socket_path()}"))
        results.extend(meter_checks_service(config, status))
        reader = status.get("reader")
        if config.reader is None:
            results.append(skipped("reader", "no [reader] configured"))
        elif isinstance(reader, dict) and reader.get("available") is False:
            results.append(failed("reader", "the service reports the reader lost",
                                  "check the reader's cable; for PC/SC: systemctl status pcscd"))
        else:
            results.append(passed("reader", "in use by the service"))
        results.extend(hardware_checks_service(status))
        backend = status.get("backend") if isinstance(status.get("backend"), dict) else {}
        link = backend.get("link") if isinstance(backend.get("link"), dict) else {}
        if config.ocpp is None:
            results.append(skipped("backend reachable", "no [ocpp] section"))
            results.append(check_clock(now))
        elif link.get("state") == "connected" or (not link and backend.get("online")):
            results.append(passed("backend reachable",
                                  f"service connected to {link.get('url') or backend.get('url')}"
                                  f" (boot {backend.get('registration', '?')})"))
            offset = backend.get("clock_offset_s")
            reference = now + timedelta(seconds=offset) if isinstance(offset, int | float) else None
            results.append(check_clock(now, reference, "backend"))
        else:
            results.append(failed("backend reachable",
                                  f"service link {link.get('state', 'down')}: "
                                  f"{link.get('last_error') or 'no connection'}",
                                  "check the network, the [ocpp] url and credentials"))
            results.append(check_clock(now))
    else:
        results.append(skipped("service", "not running: checking the hardware directly"))
        results.extend(meter_checks_direct(config))
        results.append(reader_check_direct(config))
        try:
            with direct_hardware(config, "chargerfw selftest") as board:
                results.extend(hardware_checks(board))
        except SystemExit:
            results.append(failed("pins readable", "could not open the hardware (see above)",
                                  "stop whatever holds the hardware lock, or start the service"))
        if config.ocpp is None:
            results.append(skipped("backend reachable", "no [ocpp] section"))
            results.append(check_clock(now))
        else:
            password = None
            store = station.open_store()
            if store is not None:
                password = store.config_get("AuthorizationKey") or None
                store.close()
            probe = asyncio.run(probe_backend(config, password))
            results.append(backend_check(probe))
            results.append(check_clock(datetime.now(UTC), probe.server_time, "backend"))
    results.append(check_disk(station.store_path))
    return results


def _table(results: list[CheckResult]) -> list[str]:
    width = max(len(r.name) for r in results)
    lines = []
    for r in results:
        mark = {CheckStatus.PASS: "PASS", CheckStatus.FAIL: "FAIL", CheckStatus.SKIP: "skip"}[r.status]
        lines.append(f"{mark}  {r.name:<{width}}  {r.detail}")
        if r.status is CheckStatus.FAIL and r.hint:
            lines.append(f"      {'':<{width}}  -> {r.hint}")
    return lines


@main.command("selftest")
@config_option
@json_option
def selftest_command(config_path: str, as_json: bool) -> None:
    """Check config, meter, reader, pins, contactor feedback, backend, clock and disk space;
    a pass/fail table, exit 1 if any check failed."""
    results = run_selftest(config_path)
    ok = overall_ok(results)
    if as_json:
        echo_json({"passed": ok, "checks": [r.as_dict() for r in results]})
    else:
        for line in _table(results):
            click.echo(line)
        click.echo("selftest " + ("PASSED" if ok else "FAILED"))
    raise SystemExit(EXIT_OK if ok else EXIT_FAILED)


# -- support bundle --------------------------------------------------------------------------------
def _versions() -> dict[str, Any]:
    packages = {}
    for name in ("chargerfw", "ocpp", "websockets", "pymodbus", "pyscard", "pydantic", "click",
                 "structlog", "smbus2", "pyserial", "RPi.GPIO", "rpi-lgpio", "tomlkit"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            packages[name] = metadata.version(name)
    os_release = {}
    with contextlib.suppress(OSError):
        for line in Path("/etc/os-release").read_text().splitlines():
            key, _, value = line.partition("=")
            if key in ("PRETTY_NAME", "VERSION_ID", "ID"):
                os_release[key] = value.strip('"')
    model = None
    with contextlib.suppress(OSError):
        model = Path("/proc/device-tree/model").read_text().rstrip("\x00")
    return {"firmware": __version__, "python": sys.version, "platform": platform.platform(),
            "machine": platform.machine(), "os": os_release, "board": model,
            "packages": packages}


def _recent_logs(lines: int = 2000) -> str:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return "journalctl is not available on this system: no service logs collected.\n"
    try:
        proc = subprocess.run([journalctl, "-u", "chargerfw", "-n", str(lines), "--no-pager",
                               "-o", "short-iso"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"journalctl failed: {exc}\n"
    if proc.returncode != 0:
        return f"journalctl -u chargerfw exited {proc.returncode}: {proc.stderr.strip()}\n"
    return proc.stdout or "journalctl returned no lines for unit chargerfw.\n"


def build_bundle(config_path: str) -> tuple[Bundle, bool]:
    """The bundle's files, and whether the selftest passed."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    bundle = Bundle(f"chargerfw-support-{stamp}")
    try:
        raw = Path(config_path).read_text(encoding="utf-8")
        try:
            bundle.add(BundleFile.text("config.toml", redact_toml_text(raw)))
        except Exception as exc:  # not TOML: never copy an unparsed file (it may hold a secret)
            bundle.add(BundleFile.text("config.toml.txt",
                                       f"# {config_path} is not valid TOML ({exc}); not copied\n"))
    except OSError as exc:
        bundle.add(BundleFile.text("config.toml.txt", f"# cannot read {config_path}: {exc}\n"))
    results = run_selftest(config_path)
    ok = overall_ok(results)
    bundle.add(BundleFile.json("selftest.json",
                               {"passed": ok, "checks": [r.as_dict() for r in results]}))
    bundle.add(BundleFile.json("versions.json", _versions()))
    bundle.add(BundleFile.text("logs.txt", _recent_logs()))
    status = service_or_none("status")
    bundle.add(BundleFile.json("status.json", redact(status) if status is not None
                               else {"service": "not running"}))
    from chargerfw.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError:
        config = None
    store = Station(config, Path(config_path)).open_store() if config else None
    if store is None:
        bundle.add(BundleFile.text("store.txt", "no store available (config invalid or no "
                                   "database yet)\n"))
    else:
        try:
            bundle.add(BundleFile.json("faults.json",
                                       [fault_dict(f) for f in store.faults(limit=1000)]))
            bundle.add(BundleFile.json("ocpp-frames.json", [
                {"seq": f.seq, "at": iso(f.at), "direction": f.direction,
                 "frame": redact_frame(f.frame)} for f in store.frame_log()]))
            outbox = store.outbox_all(limit=1000)
            bundle.add(BundleFile.json("outbox.json", {
                "pending": sum(1 for m in outbox if m.state == "pending"),
                "dead": sum(1 for m in outbox if m.state == "dead"),
                "delivered_recent": sum(1 for m in outbox if m.state == "delivered"),
                "undelivered": [redact(record_dict(m, ("created_at", "next_attempt_at")))
                                for m in outbox if m.state != "delivered"],
            }))
            bundle.add(BundleFile.json("transactions.json", [
                record_dict(t, ("started_at", "stopped_at", "last_meter_at"))
                for t in store.transactions(limit=100)]))
            keys = {k: ("***" if k == "AuthorizationKey" else v)
                    for k, v in store.config_all().items()}
            bundle.add(BundleFile.json("ocpp-keys.json", keys))
        finally:
            store.close()
    return bundle, ok


@main.command("support-bundle")
@config_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="archive to write [default: ./chargerfw-support-<time>.tar.gz]")
@json_option
def support_bundle_command(config_path: str, output: str | None, as_json: bool) -> None:
    """One tar.gz with config (secrets redacted), recent logs, fault history, OCPP frame log,
    outbox summary, versions and the selftest result: send it to support."""
    bundle, ok = build_bundle(config_path)
    path = Path(output) if output else Path(f"{bundle.folder}.tar.gz")
    try:
        bundle.write(path)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror or exc}", EXIT_USAGE)
    if as_json:
        echo_json({"path": str(path), "files": [f.name for f in bundle.files],
                   "selftest_passed": ok})
    else:
        click.echo(f"wrote {path} ({path.stat().st_size} bytes, {len(bundle.files)} files); "
                   f"selftest {'passed' if ok else 'FAILED'}")
