"""`chargerfw rfid` commands: watch a token reader and print its events."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import click

from chargerfw.cli import config_option, load_config_or_exit
from chargerfw.cli.common import Station, load_station, reaching_the_hardware, station_access
from chargerfw.config import ReaderSection
from chargerfw.control.access import ServiceAccess
from chargerfw.control.api import ControlError
from chargerfw.control.client import ControlUnavailable
from chargerfw.drivers.readers import ReaderUnavailable, TokenReader, open_reader
from chargerfw.drivers.types import TagEvent, TagEventKind
from chargerfw.hwlock import HardwareLock
from chargerfw.validation import Invalid, convert

READER_TYPES = ["pcsc", "pn532-uart", "pn532-i2c", "rdm6300", "sim"]


def _int_auto_base(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value, 0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a number (write 0x24 or 36)") from None


@click.group(invoke_without_command=True)
@config_option
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.1),
              help="give up after this many seconds without a tap [default: wait]")
@click.option("--id-tag", help="do not wait for a card: judge this idTag")
@click.option("--json", "as_json", is_flag=True, help="print one JSON document")
@click.pass_context
def rfid(ctx: click.Context, config_path: str, timeout_s: float | None, id_tag: str | None,
         as_json: bool) -> None:
    """Token (RFID/NFC card) reader tools. Without a subcommand: wait for one tap on the
    station's reader and show its UID, idTag and what authorization would decide offline
    (local list, cache, LocalAuthorizeOffline, AllowOfflineTxForUnknownId).

    \b
    Exit status: 0 a tag was read and judged; 1 no tap before --timeout, or the hardware is
    held by another process; 2 bad options or config; 3 the reader (or service) is missing.
    """
    if ctx.invoked_subcommand is not None:
        return
    station = load_station(config_path)
    uid_hex = None
    reader_name = None
    if id_tag is None:
        event = _wait_for_tap(station, timeout_s)
        id_tag, uid_hex, reader_name = event.id_tag, event.uid.hex().upper(), event.reader
    assert id_tag is not None
    result = {"uid": uid_hex, "id_tag": id_tag, "reader": reader_name,
              **asyncio.run(judge_offline(station, id_tag))}
    if as_json:
        click.echo(json.dumps(result, indent=2, default=str))
        return
    if uid_hex:
        click.echo(f"UID        {':'.join(uid_hex[i:i + 2] for i in range(0, len(uid_hex), 2))}"
                   f"  ({len(uid_hex) // 2} bytes, reader {reader_name})")
    click.echo(f"idTag      {id_tag}")
    for where in ("local_list", "cache"):
        entry = result[where]
        click.echo(f"{where.replace('_', ' '):<10} "
                   + ("not there" if entry is None else
                      f"{entry['status']}" + (f", expires {entry['expiryDate']}"
                                              if entry.get("expiryDate") else "")
                      + (f", parent {entry['parentIdTag']}" if entry.get("parentIdTag") else "")))
    decision = result["offline_decision"]
    verdict = "ACCEPTED" if decision["accepted"] else "REFUSED"
    click.echo(f"offline    {verdict} ({decision['status']}, decided by {decision['source']})")
    click.echo(f"online     {result['online_rule']}")
    keys = ", ".join(f"{k}={v}" for k, v in result["keys"].items())
    click.echo(f"keys       {keys}")


def _wait_for_tap(station: Station, timeout_s: float | None) -> TagEvent:
    """The first card presented to the station's reader: through the service while it runs
    (the station handles the card as usual too), else read here under the hardware lock."""
    config = station.config
    if config.reader is None:
        click.echo(f"error: {station.config_path} has no [reader] section", err=True)
        raise SystemExit(2)
    access = station_access(station)
    if isinstance(access, ServiceAccess):
        try:
            answer = access.next_tap(timeout_s or 3600)
        except ControlUnavailable:
            pass  # not answering after all: read the reader directly
        except ControlError as exc:
            if exc.method_missing:
                click.echo("error: the running service owns the reader and does not offer "
                           "rfid.next; stop it (systemctl stop chargerfw) to read the reader "
                           "directly", err=True)
                raise SystemExit(3) from None
            click.echo(f"error: {exc.message}", err=True)
            raise SystemExit(1) from None
        else:
            if not answer.id_tag:
                click.echo("no tap before the timeout", err=True)
                raise SystemExit(1)
            return TagEvent(TagEventKind.PRESENTED, answer.reader, answer.id_tag,
                            bytes.fromhex(answer.uid or ""))
    reader = open_reader(config.reader, simulated=config.hardware == "sim")
    with reaching_the_hardware(), HardwareLock("chargerfw rfid"):
        try:
            event = asyncio.run(_first_tap(reader, timeout_s))
        except ReaderUnavailable as exc:
            click.echo(f"error: reader {reader.name} not available: {exc}", err=True)
            raise SystemExit(3) from None
        except KeyboardInterrupt:
            raise SystemExit(1) from None
    if event is None:
        click.echo(f"no tap within {timeout_s:g} s", err=True)
        raise SystemExit(1)
    return event


async def _first_tap(reader: TokenReader, timeout_s: float | None) -> TagEvent | None:
    events = reader.events()
    await reader.start(require_reader=True)
    click.echo(f"waiting for a card on {reader.name} (Ctrl-C to stop)...", err=True)
    try:
        async with asyncio.timeout(timeout_s):
            async for event in events:
                if event.kind == TagEventKind.PRESENTED and event.id_tag:
                    return event
    except TimeoutError:
        return None
    finally:
        await reader.stop()
    return None


class _NoStore:
    """An empty list and cache, for a station whose store does not exist yet."""

    def cache_get(self, id_tag: str) -> None:
        return None

    def local_list_get(self, id_tag: str) -> None:
        return None

    def cache_put(self, id_tag: str, info: object) -> None:
        raise RuntimeError("read-only")

    def cache_clear(self) -> None:
        raise RuntimeError("read-only")


async def judge_offline(station: Station, id_tag: str) -> dict[str, Any]:
    """What the station's Authorizer decides for ``id_tag`` with the backend unreachable, and
    the list/cache entries and keys that led there. Reads the store; writes nothing."""
    from chargerfw.station.auth import AuthConfig, Authorizer, BackendUnavailable

    async def offline(_tag: str) -> Any:
        raise BackendUnavailable("offline (diagnostics)")

    store = station.open_store()
    try:
        source: Any = store if store is not None else _NoStore()
        stored = store.config_all() if store is not None else {}
        config = AuthConfig.from_keys({k: v for k, v in stored.items() if k in AuthConfig.KEYS})
        authorizer = Authorizer(source, offline, config, is_online=lambda: False)
        decision = await authorizer.authorize(id_tag)
        list_entry = source.local_list_get(id_tag)
        cache_entry = source.cache_get(id_tag)
    finally:
        if store is not None:
            store.close()
    if config.local_pre_authorize:
        online_rule = ("a tag valid in the local list or cache is accepted at once "
                       "(LocalPreAuthorize); others are asked of the backend")
    else:
        online_rule = "the backend decides (Authorize.req)"
    return {
        "local_list": list_entry.to_wire() if list_entry else None,
        "cache": cache_entry.to_wire() if cache_entry else None,
        "offline_decision": {"accepted": decision.accepted, "status": decision.status.value,
                             "source": decision.source.value},
        "online_rule": online_rule,
        "keys": {key: getattr(config, attr) for key, attr in AuthConfig.KEYS.items()},
    }


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
        section = convert({key: value for key, value in options.items() if value is not None},
                          ReaderSection)
    except Invalid as exc:
        for problem in exc.problems:
            where = ".".join(str(part) for part in problem.loc)
            click.echo(f"error: reader {where + ': ' if where else ''}{problem.message}", err=True)
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
