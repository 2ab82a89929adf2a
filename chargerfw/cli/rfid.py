"""`chargerfw rfid` commands: watch a token reader and print its events."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import click
from pydantic import ValidationError

from chargerfw.cli import config_option, load_config_or_exit, main
from chargerfw.config import ReaderSection
from chargerfw.drivers.readers import ReaderUnavailable, TokenReader, open_reader
from chargerfw.drivers.types import TagEvent, TagEventKind

READER_TYPES = ["pcsc", "pn532-uart", "pn532-i2c", "rdm6300", "sim"]


def _int_auto_base(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (write 0x24 or 36)") from None


@main.group()
def rfid() -> None:
    """Token (RFID/NFC card) reader tools."""


def format_event(event: TagEvent, as_json: bool) -> str:
    """One output line for an event."""
    when = datetime.datetime.fromtimestamp(event.timestamp, datetime.UTC)
    stamp = when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if as_json:
        return json.dumps({"time": stamp, "event": str(event.kind), "id_tag": event.id_tag,
                           "reader": event.reader})
    return f"{stamp}  {event.kind!s:<12} {event.id_tag or '-'}"


def _reader_from_options(config_path: str, options: dict[str, Any]) -> TokenReader:
    if options["type"] is None:
        if any(value is not None for key, value in options.items() if key != "type"):
            raise click.UsageError("reader options need --type (or use the [reader] of --config)")
        config = load_config_or_exit(config_path)
        if config.reader is None:
            click.echo(f"error: {config_path} has no [reader] section", err=True)
            raise SystemExit(2)
        return open_reader(config.reader, simulated=config.hardware == "sim")
    try:
        section = ReaderSection(**{key: value for key, value in options.items() if value is not None})
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"])
            click.echo(f"error: reader {where + ': ' if where else ''}{problem['msg']}", err=True)
        raise SystemExit(2) from None
    return open_reader(section)


async def _watch(reader: TokenReader, as_json: bool, count: int | None) -> None:
    events = reader.events()
    await reader.start(require_reader=True)
    taps = 0
    try:
        async for event in events:
            click.echo(format_event(event, as_json))
            if event.kind == TagEventKind.PRESENTED:
                taps += 1
                if count is not None and taps >= count:
                    return
    finally:
        await reader.stop()


@rfid.command()
@config_option
@click.option("--type", "reader_type", type=click.Choice(READER_TYPES),
              help="ad-hoc reader instead of the config's [reader]")
@click.option("--port", help="serial port (pn532-uart, rdm6300)")
@click.option("--baudrate", type=int, help="serial speed (default: 115200 PN532, 9600 RDM6300)")
@click.option("--i2c-bus", type=int, help="I2C bus number (pn532-i2c)")
@click.option("--i2c-address", callback=_int_auto_base, help="I2C address (pn532-i2c, default 0x24)")
@click.option("--reader-name", help="PC/SC: part of the reader name")
@click.option("--poll-interval", type=float, help="seconds between polls")
@click.option("--removal-timeout", type=float, help="RDM6300: seconds without frames = removed")
@click.option("--json", "as_json", is_flag=True, help="print JSON lines")
@click.option("--count", type=click.IntRange(min=1), help="exit after this many taps")
def watch(config_path: str, reader_type: str | None, port: str | None, baudrate: int | None,
          i2c_bus: int | None, i2c_address: int | None, reader_name: str | None,
          poll_interval: float | None, removal_timeout: float | None, as_json: bool,
          count: int | None) -> None:
    """Print one line per reader event (time, event, idTag) until Ctrl-C."""
    reader = _reader_from_options(config_path, {
        "type": reader_type, "port": port, "baudrate": baudrate, "i2c_bus": i2c_bus,
        "i2c_address": i2c_address, "reader_name": reader_name, "poll_interval_s": poll_interval,
        "removal_timeout_s": removal_timeout,
    })
    try:
        asyncio.run(_watch(reader, as_json, count))
    except ReaderUnavailable as exc:
        click.echo(f"error: reader {reader.name} not available: {exc}", err=True)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a watch ends
