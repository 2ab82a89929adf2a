"""`chargerfw meters` (list the known models) and `chargerfw meter read` (one sample).

Exit codes of `meter read`: 0 a sample was read; 2 bad options or config; 3 the meter did not
answer (timeout, no port, corrupted replies); 4 the meter answered but not with a usable sample
(exception reply, value not available).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from chargerfw.cli import config_option, load_config_or_exit
from chargerfw.cli.common import station_access
from chargerfw.config import MeterSection, known_meter_models
from chargerfw.control.access import ServiceAccess
from chargerfw.control.api import BadReply, ControlError
from chargerfw.control.client import ControlUnavailable
from chargerfw.drivers.meter import EnergyMeter, MeterReadError, all_meter_maps, load_meter_map
from chargerfw.drivers.meter.driver import quiet_pymodbus
from chargerfw.drivers.meter.regmap import MeterMap, MeterMapError
from chargerfw.drivers.types import MeterFaultKind, MeterSample
from chargerfw.validation import Invalid, convert

EXIT_NO_REPLY = 3
EXIT_BAD_REPLY = 4
NO_REPLY_KINDS = {MeterFaultKind.TIMEOUT, MeterFaultKind.CRC_ERROR}


def _serial_text(meter_map: MeterMap) -> str:
    s = meter_map.serial
    return f"{s.baudrate} 8{s.parity}{s.stopbits} unit {s.unit_id}"


def _map_summary(meter_map: MeterMap) -> dict[str, Any]:
    s = meter_map.serial
    return {
        "model": meter_map.name, "vendor": meter_map.vendor, "name": meter_map.model,
        "description": meter_map.description, "phases": meter_map.phases,
        "serial": {"baudrate": s.baudrate, "parity": s.parity, "stopbits": s.stopbits,
                   "unit_id": s.unit_id},
        "min_query_gap_ms": meter_map.min_query_gap_ms,
        "quantities": sorted(q.value for q in meter_map.quantities),
    }


@click.command("meters")
@click.option("--json", "as_json", is_flag=True, help="one JSON document")
def meters_command(as_json: bool) -> None:
    """List the meter models (register maps in hw/meters)."""
    try:
        maps = all_meter_maps()
    except MeterMapError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(2) from None
    if as_json:
        click.echo(json.dumps([_map_summary(m) for m in maps], indent=2))
        return
    width = max(len(m.name) for m in maps)
    for m in maps:
        click.echo(f"{m.name:<{width}}  {m.vendor} {m.model}, {m.phases}-phase, "
                   f"{_serial_text(m)}")


@click.group("meter", invoke_without_command=True)
@config_option
@click.option("--connector", type=int, help="which connector's meter [default: the only one]")
@click.option("--once", is_flag=True, help="print one sample and exit")
@click.option("--interval", "interval_s", type=click.FloatRange(0.2, 3600), default=1.0,
              show_default=True, help="seconds between refreshes")
@click.option("--count", type=click.IntRange(min=1), help="exit after this many samples")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one per sample")
@click.pass_context
def meter_group(ctx: click.Context, config_path: str, connector: int | None, once: bool,
                interval_s: float, count: int | None, as_json: bool) -> None:
    """Energy meter tools. Without a subcommand: a live view of the station's meter that
    refreshes until Ctrl-C (through the service while it runs, else read directly).

    \b
    Exit status: 0 ok; 2 bad options or config; 3 the meter (or the service) did not answer;
    4 the meter answered but not with a usable sample.
    """
    if ctx.invoked_subcommand is not None:
        return
    live_view(config_path, connector, count=1 if once else count, interval_s=interval_s,
              as_json=as_json)


def _parse_tcp(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise click.BadParameter(f"{value!r} is not HOST:PORT (for example 192.168.1.50:502)",
                                 param_hint="'--tcp'")
    return host, int(port)


def _section_from_options(model: str, port: str | None, tcp: str | None,
                          extra: dict[str, Any]) -> MeterSection:
    if bool(port) == bool(tcp):
        raise click.UsageError("give exactly one of --port (RTU) or --tcp HOST:PORT")
    fields: dict[str, Any] = {"model": model, **{k: v for k, v in extra.items() if v is not None}}
    if tcp:
        host, tcp_port = _parse_tcp(tcp)
        fields.update(transport="tcp", host=host, tcp_port=tcp_port)
    else:
        fields.update(transport="rtu", port=port)
    try:
        return convert(fields, MeterSection)
    except Invalid as exc:
        for problem in exc.problems:
            where = ".".join(str(part) for part in problem.loc)
            click.echo(f"error: meter {where + ': ' if where else ''}{problem.message}", err=True)
        raise SystemExit(2) from None


def _section_from_config(config_path: str, connector: int | None) -> MeterSection:
    config = load_config_or_exit(config_path)
    if connector is None:
        if len(config.connector) > 1:
            ids = ", ".join(str(c.id) for c in config.connector)
            raise click.UsageError(f"the station has connectors {ids}: pick one with --connector")
        return config.connector[0].meter
    try:
        return config.connector_by_id(connector).meter
    except KeyError:
        ids = ", ".join(str(c.id) for c in config.connector)
        click.echo(f"error: no connector {connector} in {config_path} (have {ids})", err=True)
        raise SystemExit(2) from None


def format_sample(sample: MeterSample, phases: int) -> list[str]:
    """The human view of one sample."""

    def phase_values(prefix: str, unit: str, digits: int) -> str:
        parts = []
        for n in range(1, phases + 1):
            value = getattr(sample, f"{prefix}_l{n}_{unit.lower()}")
            if value is not None:
                parts.append(f"L{n} {value:.{digits}f} {unit}")
        return "  ".join(parts) or "-"

    lines = [f"energy import  {sample.energy_import_wh / 1000:.3f} kWh"]
    if sample.energy_export_wh is not None:
        lines.append(f"energy export  {sample.energy_export_wh / 1000:.3f} kWh")
    total = f"{sample.power_w:.1f} W" if sample.power_w is not None else "-"
    per_phase = phase_values("power", "W", 1)
    lines.append(f"power          {total}" + (f"  ({per_phase})" if per_phase != "-" else ""))
    lines.append(f"voltage        {phase_values('voltage', 'V', 1)}")
    lines.append(f"current        {phase_values('current', 'A', 2)}")
    if sample.frequency_hz is not None:
        lines.append(f"frequency      {sample.frequency_hz:.2f} Hz")
    return lines


@contextlib.contextmanager
def _bus_lock(section: MeterSection, from_config: bool) -> Iterator[None]:
    """The station's RS-485 bus has room for one master: take the hardware lock for it (a
    Modbus TCP meter serves several clients; an ad-hoc --model meter is a bench tool)."""
    from chargerfw.hwlock import HardwareBusy, HardwareLock, HardwareLockError

    if not from_config or section.transport != "rtu":
        yield
        return
    lock = HardwareLock("chargerfw meter")
    try:
        lock.acquire()
    except HardwareBusy as exc:
        click.echo(f"error: {exc}; while the service runs, `chargerfw meter --once` reads "
                   "through it", err=True)
        raise SystemExit(1) from None
    except HardwareLockError as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(EXIT_NO_REPLY) from None
    try:
        yield
    finally:
        lock.release()


async def _read_once(meter: EnergyMeter) -> MeterSample:
    async with meter:
        return await meter.read_sample()


@meter_group.command("read")
@config_option
@click.option("--connector", type=int, help="which connector's meter (station config)")
@click.option("--model", type=click.Choice(known_meter_models()),
              help="read an ad-hoc meter of this model instead of the config's")
@click.option("--port", help="RS-485 serial port (Modbus RTU)")
@click.option("--tcp", "tcp", metavar="HOST:PORT", help="Modbus TCP address")
@click.option("--unit", "unit_id", type=int, help="Modbus unit id [default: the model's]")
@click.option("--baud", "baudrate", type=int, help="baud rate [default: the model's]")
@click.option("--parity", type=click.Choice(["N", "E", "O"], case_sensitive=False),
              help="parity [default: the model's]")
@click.option("--stopbits", type=click.Choice(["1", "2"]), help="stop bits [default: the model's]")
@click.option("--timeout", "timeout_s", type=float, help="seconds to wait for a reply [1.0]")
@click.option("--json", "as_json", is_flag=True, help="print the sample as JSON")
def meter_read(config_path: str, connector: int | None, model: str | None, port: str | None,
               tcp: str | None, unit_id: int | None, baudrate: int | None, parity: str | None,
               stopbits: str | None, timeout_s: float | None, as_json: bool) -> None:
    """Read one sample from the meter of the station config, or an ad-hoc one (--model).

    \b
    Exit status: 0 read; 2 bad options or config; 3 no reply (timeout, port missing,
    corrupted frames); 4 the meter answered with an exception or an unusable value.
    """
    extra = {"unit_id": unit_id, "baudrate": baudrate,
             "parity": parity.upper() if parity else None,
             "stopbits": int(stopbits) if stopbits else None, "timeout_s": timeout_s}
    if model:
        if connector is not None:
            raise click.UsageError("--connector picks a meter from the config; not with --model")
        section = _section_from_options(model, port, tcp, extra)
    else:
        if port or tcp or any(v is not None for v in extra.values()):
            raise click.UsageError("--port/--tcp/--unit/--baud/--parity/--stopbits/--timeout "
                                   "describe an ad-hoc meter: give --model too")
        section = _section_from_config(config_path, connector)
    quiet_pymodbus()
    meter_map = load_meter_map(section.model)
    meter = EnergyMeter(section, meter_map=meter_map)
    where = meter.bus.describe()
    try:
        with _bus_lock(section, from_config=model is None):
            sample = asyncio.run(_read_once(meter))
    except MeterReadError as exc:
        code = EXIT_NO_REPLY if exc.kind in NO_REPLY_KINDS else EXIT_BAD_REPLY
        click.echo(f"error: {section.model} via {where}: {exc.kind}: {exc.detail}", err=True)
        if as_json:
            click.echo(json.dumps({"model": section.model, "bus": where,
                                   "error": {"kind": str(exc.kind), "detail": exc.detail}}))
        raise SystemExit(code) from None
    if as_json:
        click.echo(json.dumps({"model": section.model, "bus": where,
                               "transactions": meter.counters.transactions,
                               "sample": dataclasses.asdict(sample)}, indent=2))
        return
    click.echo(f"{meter_map.vendor} {meter_map.model} ({section.model}) via {where}")
    for line in format_sample(sample, meter_map.phases):
        click.echo(line)


# -- live view -------------------------------------------------------------------------------------
def _pick_connector_id(config_path: str, connector: int | None) -> tuple[int, MeterSection]:
    config = load_config_or_exit(config_path)
    section = _section_from_config(config_path, connector)
    cid = connector if connector is not None else config.connector[0].id
    return cid, section


def _show(sample: MeterSample | None, error: str | None, head: str, phases: int,
          as_json: bool, connector_id: int, source: str, refresh: bool) -> None:
    if as_json:
        line: dict[str, Any] = {"connector": connector_id, "source": source}
        if sample is not None:
            line["sample"] = dataclasses.asdict(sample)
        else:
            line["error"] = error
        click.echo(json.dumps(line))
        return
    if refresh:
        click.clear()
    stamp = time.strftime("%H:%M:%S")
    click.echo(f"{head}  [{source}, {stamp}]")
    if sample is None:
        click.echo(f"  {error}")
        return
    for text in format_sample(sample, phases):
        click.echo(text)


def live_view(config_path: str, connector: int | None, *, count: int | None, interval_s: float,
              as_json: bool) -> None:
    """Samples until Ctrl-C (or ``count``): via the service if it runs, else from the meter
    (an RS-485 meter under the hardware lock: one process per bus)."""
    cid, section = _pick_connector_id(config_path, connector)
    meter_map = load_meter_map(section.model)
    head = f"connector {cid}: {meter_map.vendor} {meter_map.model}"
    refresh = not as_json and count != 1 and sys.stdout.isatty()
    access = station_access(config_path)
    try:
        if isinstance(access, ServiceAccess) and _service_loop(
                access, cid, head, meter_map.phases, as_json, count, interval_s, refresh):
            return
        with _bus_lock(section, from_config=True):
            code = asyncio.run(_direct_loop(section, meter_map, head, as_json, cid, count,
                                            interval_s, refresh))
        raise SystemExit(code)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a live view ends


def _service_loop(access: ServiceAccess, cid: int, head: str, phases: int, as_json: bool,
                  count: int | None, interval_s: float, refresh: bool) -> bool:
    """The service's samples; False if it did not answer the first request (read the meter
    directly then)."""
    shown = 0
    while True:
        try:
            sample = access.meter_sample(cid)
            error = None if sample else "the service has no sample yet"
        except ControlUnavailable:
            if shown == 0:
                return False
            click.echo("error: the service stopped answering", err=True)
            raise SystemExit(EXIT_NO_REPLY) from None
        except BadReply as exc:
            sample, error = None, f"unusable sample from the service: {exc.message}"
        except ControlError as exc:
            click.echo(f"error: the service has no sample: {exc.message}", err=True)
            raise SystemExit(EXIT_NO_REPLY) from None
        _show(sample, error, head, phases, as_json, cid, "service", refresh)
        shown += 1
        if count is not None and shown >= count:
            if sample is None:
                raise SystemExit(EXIT_NO_REPLY)
            return True
        time.sleep(interval_s)


async def _direct_loop(section: MeterSection, meter_map: MeterMap, head: str, as_json: bool,
                       cid: int, count: int | None, interval_s: float, refresh: bool) -> int:
    quiet_pymodbus()
    meter = EnergyMeter(section, meter_map=meter_map)
    source = f"direct {meter.bus.describe()}"
    shown = 0
    code = 0
    async with meter:
        while True:
            try:
                sample: MeterSample | None = await meter.read_sample()
                error = None
                code = 0
            except MeterReadError as exc:
                sample, error = None, f"no sample: {exc.kind}: {exc.detail}"
                code = EXIT_NO_REPLY if exc.kind in NO_REPLY_KINDS else EXIT_BAD_REPLY
            _show(sample, error, head, meter_map.phases, as_json, cid, source, refresh)
            shown += 1
            if count is not None and shown >= count:
                return code
            await asyncio.sleep(interval_s)
