"""The selftest's checks: plain functions that take what they judge (a sample, a clock, a path,
a board this process built, the service's status) and return a :class:`CheckResult`, and the
probes that open a device or the backend link the way the service would."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from chargerfw.config import ReaderSection, StationConfig
from chargerfw.config.wiring import (
    UNMONITORED_CONTACTOR,
    contactors_without_mirror,
    inputs_not_fail_safe,
    safety_inputs,
)
from chargerfw.control.api import StatusReply
from chargerfw.drivers.board import Board
from chargerfw.drivers.contactor import ContactorFeedback
from chargerfw.drivers.meter.plausibility import (
    PlausibilityLimits,
    frequency_problem,
    sample_problem,
    voltage_problem,
)
from chargerfw.drivers.readers import ReaderError, open_reader
from chargerfw.drivers.types import MeterSample
from chargerfw.ocpp.connection import SUBPROTOCOL, ConnectionSetupError, OcppConnection
from chargerfw.station.faults import FAULT_SPECS, FaultKind


class CheckStatus(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"  # not configured / not applicable


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: CheckStatus
    detail: str = ""
    hint: str = ""  # what to do when it failed

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "hint": self.hint}


def passed(name: str, detail: str = "") -> CheckResult:
    return CheckResult(name, CheckStatus.PASS, detail)


def failed(name: str, detail: str, hint: str) -> CheckResult:
    return CheckResult(name, CheckStatus.FAIL, detail, hint)


def skipped(name: str, detail: str) -> CheckResult:
    return CheckResult(name, CheckStatus.SKIP, detail)


def overall_ok(results: Iterable[CheckResult]) -> bool:
    return all(r.status is not CheckStatus.FAIL for r in results)


def check_meter_sample(sample: MeterSample, name: str = "meter",
                       limits: PlausibilityLimits | None = None) -> CheckResult:
    """A sample that arrived: is it plausible (finite, voltage and frequency in range)?"""
    limits = limits or PlausibilityLimits()
    hint = ("check the meter's wiring and CT direction; compare its display with `chargerfw "
            "meter --once`")
    problem = sample_problem(sample)
    if problem is None and sample.energy_import_wh < 0:
        problem = f"energy import register is negative ({sample.energy_import_wh} Wh)"
    problem = problem or voltage_problem(sample, limits) or frequency_problem(sample, limits)
    if problem:
        return failed(name, f"implausible: {problem}", hint)
    parts = [f"{sample.energy_import_wh / 1000:.3f} kWh"]
    volts = [v for v in (sample.voltage_l1_v, sample.voltage_l2_v, sample.voltage_l3_v)
             if v is not None]
    if volts:
        parts.append("/".join(f"{v:.0f}" for v in volts) + " V")
    if sample.frequency_hz is not None:
        parts.append(f"{sample.frequency_hz:.2f} Hz")
    return passed(name, ", ".join(parts))


MIN_PLAUSIBLE_YEAR = 2024
MAX_CLOCK_SKEW_S = 60.0


def check_clock(now: datetime, reference: datetime | None = None,
                reference_source: str = "backend") -> CheckResult:
    """Year >= 2024, and within MAX_CLOCK_SKEW_S of ``reference`` when there is one."""
    hint = "enable NTP (timedatectl set-ntp true) and check that the Pi reaches a time server"
    if now.year < MIN_PLAUSIBLE_YEAR:
        return failed("clock", f"system time {now.isoformat(timespec='seconds')} is before "
                      f"{MIN_PLAUSIBLE_YEAR}: the clock was never set", hint)
    if reference is None:
        return passed("clock", f"{now.isoformat(timespec='seconds')} (no reference to compare)")
    skew = (now - reference).total_seconds()
    if abs(skew) > MAX_CLOCK_SKEW_S:
        return failed("clock", f"{skew:+.0f} s off the {reference_source}'s clock "
                      f"(limit {MAX_CLOCK_SKEW_S:g} s)", hint)
    return passed("clock", f"{skew:+.0f} s against the {reference_source}")


MIN_FREE_BYTES = 64 * 1024 * 1024


def _existing_ancestor(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(path: Path, min_free_bytes: int = MIN_FREE_BYTES) -> CheckResult:
    """Free space on the filesystem that holds the store."""
    where = _existing_ancestor(path)
    usage = shutil.disk_usage(where)
    detail = (f"{usage.free / 2**20:.0f} MiB free of {usage.total / 2**20:.0f} MiB "
              f"on the filesystem of {where}")
    if usage.free < min_free_bytes:
        return failed("disk space", detail + f" (need {min_free_bytes / 2**20:.0f} MiB)",
                      "free space (journalctl --vacuum-size=50M, old bundles) or use a larger card")
    return passed("disk space", detail)


@dataclass(frozen=True, slots=True)
class BackendProbe:
    reachable: bool
    detail: str
    server_time: datetime | None = None
    round_trip_s: float | None = None


async def probe_backend(config: StationConfig, profile: int | None = None,
                        timeout_s: float = 5.0) -> BackendProbe:
    """Open the OCPP WebSocket the way the service does (``profile``, else the config's;
    the AuthorizationKey, the installed roots and the station's certificate), note the
    server's HTTP ``Date`` header, and close at once without sending a CALL."""
    from chargerfw.ocpp.credentials import AuthorizationKeyFile

    ocpp = config.ocpp
    if ocpp is None:
        return BackendProbe(False, "no [ocpp] section in the config")
    keys = AuthorizationKeyFile(config.security.authorization_key_file, ocpp.password)
    connection = OcppConnection(
        ocpp.url, config.station.id,
        security_profile=ocpp.security_profile if profile is None else profile,
        password=keys.key, security=config.security, secure_url=ocpp.secure_url,
        open_timeout_s=timeout_s, ping_interval_s=0)
    try:
        kwargs = connection.connect_kwargs()
    except (ConnectionSetupError, OSError, ValueError) as exc:
        return BackendProbe(False, f"cannot set up the connection: {exc}")
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            ws = await connect(**kwargs)
    except InvalidStatus as exc:
        status = exc.response.status_code
        why = "credentials refused" if status in (401, 403) else "handshake refused"
        return BackendProbe(False, f"{kwargs['uri']}: HTTP {status} ({why})")
    except TimeoutError:
        return BackendProbe(False, f"{kwargs['uri']}: no handshake within {timeout_s:g} s")
    except (OSError, WebSocketException) as exc:
        return BackendProbe(False, f"{kwargs['uri']}: {type(exc).__name__}: {exc}")
    round_trip = time.monotonic() - started
    try:
        server_time = None
        date = ws.response.headers.get("Date") if ws.response else None
        if date:
            with contextlib.suppress(TypeError, ValueError):
                server_time = parsedate_to_datetime(date)
        if ws.subprotocol != SUBPROTOCOL:
            return BackendProbe(False, f"{kwargs['uri']}: server did not agree to {SUBPROTOCOL}",
                                server_time, round_trip)
        return BackendProbe(True, f"{kwargs['uri']}: handshake in {round_trip * 1000:.0f} ms",
                            server_time, round_trip)
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


def backend_check(probe: BackendProbe) -> CheckResult:
    if probe.reachable:
        return passed("backend reachable", probe.detail)
    return failed("backend reachable", probe.detail,
                  "check the network (ping the backend host), the [ocpp] url, the password / "
                  "AuthorizationKey and, for wss, the installed CentralSystemRootCertificates")



async def _probe_reader(section: ReaderSection, simulated: bool) -> str:
    reader = open_reader(section, simulated=simulated)
    await reader.start(require_reader=True)
    try:
        return reader.name
    finally:
        await reader.stop()


def reader_check_direct(config: StationConfig) -> CheckResult:
    """The configured reader opens (service stopped: this process opens it)."""
    if config.reader is None:
        return skipped("reader", "no [reader] configured")
    try:
        name = asyncio.run(asyncio.wait_for(
            _probe_reader(config.reader, config.hardware == "sim"), 10))
    except (ReaderError, OSError, TimeoutError) as exc:
        return failed("reader", f"{config.reader.type}: {exc}",
                      "check the reader's cable; for PC/SC: systemctl status pcscd, pcsc_scan")
    return passed("reader", f"{config.reader.type} {name}")


def wiring_check(config: StationConfig) -> CheckResult:
    """The safety inputs read a cut wire as a fault (the config's wiring; a normally-open one
    fails the check, though the station still runs)."""
    name = "input wiring"
    unsafe = inputs_not_fail_safe(config)
    if unsafe:
        return failed(name, "not fail-safe: " + "; ".join(
                          f"{item.key}: {item.why_not_fail_safe}" for item in unsafe),
                      "wire the RCM trip contact, the emergency stop and the mirror contact "
                      'normally closed and set wiring / feedback_wiring = "normally_closed" '
                      '(docs/safety.md, "Wiring the inputs")')
    if config.hardware != "pi":
        return skipped(name, "simulated hardware: no wires to break")
    unmonitored = "".join(f"; {key}: {UNMONITORED_CONTACTOR}"
                          for key in contactors_without_mirror(config))
    inputs = safety_inputs(config)
    if not inputs:
        return skipped(name, "no fault input or mirror contact configured" + unmonitored)
    return passed(name, ", ".join(item.key for item in inputs)
                  + ": normally closed, a cut wire reads as a fault" + unmonitored)


TRIP_FAULTS = frozenset({FaultKind.RCD_TRIP, FaultKind.RCD_TRIP_REPEATED,
                         FaultKind.EMERGENCY_STOP})
CONTACTOR_FAULTS = frozenset({FaultKind.CONTACTOR_WELDED, FaultKind.CONTACTOR_FAILED_TO_CLOSE})
SENSOR_FAULTS = frozenset({FaultKind.PILOT_READ_FAILURE, FaultKind.TEMPERATURE_SENSOR_FAILURE})


def hardware_checks(board: Board) -> list[CheckResult]:
    """Pins and buses readable, contactor mirror consistent (board built by this process)."""
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
                                  "welded contactor, or a broken mirror-contact wire (normally "
                                  "closed: it reads as closed): isolate the supply, inspect the "
                                  "contactor and its feedback wire; `chargerfw test contactor` "
                                  "once repaired"))
    return results


def hardware_checks_service(status: StatusReply) -> list[CheckResult]:
    """With the service running, its status tells what it reads from the pins."""
    if not status.connectors:
        return [skipped("pins readable", "the service's status carries no connector state")]
    results = []
    sensor_codes = {FAULT_SPECS[kind].vendor_error_code for kind in SENSOR_FAULTS}
    broken = [f"connector {c.id}" for c in status.connectors if c.vendor_error_code in sensor_codes]
    if broken:
        results.append(failed("pins readable", "the service cannot read the ADC/sensor of "
                              + ", ".join(broken), "check the I2C bus, the HAT and its power"))
    else:
        results.append(passed("pins readable", "service reads " + ", ".join(
            f"pilot {c.id} {c.pilot.value}" for c in status.connectors)))
    tripped = [f.kind.value for f in status.faults if f.kind in TRIP_FAULTS]
    if tripped:
        results.append(failed("fault inputs", ", ".join(tripped),
                              "find the cause (RCM, e-stop button) before charging"))
    for c in status.connectors:
        name = f"contactor {c.id} feedback"
        bad = sorted(f.kind.value for f in status.faults
                     if f.connector == c.id and f.kind in CONTACTOR_FAULTS)
        if bad:
            results.append(failed(name, ", ".join(bad),
                                  "inspect the contactor; `chargerfw faults` for history"))
        else:
            results.append(passed(name, "no contactor fault in the service"))
    return results
