"""`chargerfw selftest`: every check a technician reads first, as a pass/fail table. With the
service running the hardware checks come from it; with it stopped they are made here, under the
hardware lock."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from chargerfw.cli import config_option
from chargerfw.cli.checks import (
    CheckResult,
    CheckStatus,
    backend_check,
    check_clock,
    check_disk,
    check_meter_sample,
    failed,
    hardware_checks,
    hardware_checks_service,
    overall_ok,
    passed,
    probe_backend,
    reader_check_direct,
    skipped,
    wiring_check,
)
from chargerfw.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    Station,
    direct_hardware,
    echo_json,
    json_option,
    station_access,
)
from chargerfw.config import ConfigError, MeterSection, StationConfig, load_config
from chargerfw.config.ocpp_keys import ConfigValueError, key_definitions, normalise
from chargerfw.control.access import ServiceAccess
from chargerfw.control.api import ControlError, StatusReply
from chargerfw.control.client import ControlUnavailable, control_socket_path
from chargerfw.drivers.meter import EnergyMeter, MeterReadError, quiet_pymodbus
from chargerfw.drivers.types import MeterSample


async def _read_meter_sample(section: MeterSection) -> MeterSample:
    quiet_pymodbus()
    meter = EnergyMeter.from_config(section)
    async with meter:
        return await meter.read_sample()


def meter_checks_direct(config: StationConfig) -> list[CheckResult]:
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
        results.append(check_meter_sample(sample, name))
    return results


def meter_checks_service(config: StationConfig, access: ServiceAccess) -> list[CheckResult]:
    results = []
    for c in config.connector:
        name = f"meter {c.id}"
        try:
            sample = access.meter_sample(c.id)
        except (ControlError, ControlUnavailable) as exc:
            message = exc.message if isinstance(exc, ControlError) else str(exc)
            results.append(failed(name, f"the service has no sample: {message}",
                                  "see `chargerfw faults --active` for meter faults"))
            continue
        if sample is None:
            results.append(skipped(name, "the service reports no meter values"))
            continue
        age = time.time() - sample.timestamp
        stale_after = max(10.0, 3 * c.meter.poll_interval_s)
        if age > stale_after:
            results.append(failed(name, f"the service's last sample is {age:.0f} s old "
                                  f"(limit {stale_after:g} s)",
                                  "the meter stopped answering: `chargerfw faults --active`, "
                                  "check its bus"))
            continue
        results.append(check_meter_sample(sample, name))
    return results


def config_check(config_path: str) -> tuple[StationConfig | None, CheckResult]:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return None, failed("config", "; ".join(exc.problems),
                            f"fix {config_path} (`chargerfw config validate`)")
    return config, passed("config", f"{config_path}: station {config.station.id}")


def ocpp_keys_check(station: Station) -> CheckResult:
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


def _service_checks(config: StationConfig, access: ServiceAccess, status: StatusReply,
                    now: datetime) -> list[CheckResult]:
    results = [passed("service", f"running, control socket {control_socket_path()}")]
    results.extend(meter_checks_service(config, access))
    if config.reader is None:
        results.append(skipped("reader", "no [reader] configured"))
    elif status.reader is not None and not status.reader.available:
        results.append(failed("reader", "the service reports the reader lost",
                              "check the reader's cable; for PC/SC: systemctl status pcscd"))
    else:
        results.append(passed("reader", "in use by the service"))
    results.extend(hardware_checks_service(status))
    backend, link = status.backend, status.backend.link
    if config.ocpp is None:
        results.append(skipped("backend reachable", "no [ocpp] section"))
        results.append(check_clock(now))
    elif link.state == "connected":
        results.append(passed("backend reachable",
                              f"service connected to {link.url or backend.url}"
                              f" (boot {backend.registration})"))
        offset = backend.clock_offset_s
        reference = now + timedelta(seconds=offset) if offset is not None else None
        results.append(check_clock(now, reference, "backend"))
    else:
        results.append(failed("backend reachable",
                              f"service link {link.state}: {link.last_error or 'no connection'}",
                              "check the network, the [ocpp] url and credentials"))
        results.append(check_clock(now))
    return results


def _direct_checks(station: Station) -> list[CheckResult]:
    config = station.config
    results = [skipped("service", "not running: checking the hardware directly")]
    results.extend(meter_checks_direct(config))
    results.append(reader_check_direct(config))
    try:
        with direct_hardware(station, "chargerfw selftest") as board:
            results.extend(hardware_checks(board))
    except SystemExit:
        results.append(failed("pins readable", "could not open the hardware (see above)",
                              "stop whatever holds the hardware lock, or start the service"))
    if config.ocpp is None:
        results.append(skipped("backend reachable", "no [ocpp] section"))
        results.append(check_clock(datetime.now(UTC)))
    else:
        profile = None  # the profile the station last connected with, if raised remotely
        store = station.open_store()
        if store is not None:
            stored = store.config_get("SecurityProfile")
            profile = int(stored) if stored else None
            store.close()
        probe = asyncio.run(probe_backend(config, profile))
        results.append(backend_check(probe))
        results.append(check_clock(datetime.now(UTC), probe.server_time, "backend"))
    return results


def run_selftest(config_path: str) -> list[CheckResult]:
    """Every check, in the order a technician reads them."""
    config, result = config_check(config_path)
    results = [result]
    now = datetime.now(UTC)
    if config is None:
        results.append(check_clock(now))
        return results
    results.append(wiring_check(config))
    station = Station(config, Path(config_path))
    results.append(ocpp_keys_check(station))
    access = station_access(station)
    status = None
    if isinstance(access, ServiceAccess):
        try:
            status = access.status()
        except (ControlUnavailable, ControlError):
            status = None  # not answering: check the hardware directly
    if isinstance(access, ServiceAccess) and status is not None:
        results.extend(_service_checks(config, access, status, now))
    else:
        results.extend(_direct_checks(station))
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


@click.command("selftest")
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
