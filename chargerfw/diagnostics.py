"""What the technician's commands share: the client of the service's control socket, exit
codes, secret redaction, the selftest checks, and the support bundle.

The checks here are plain functions that take what they judge (a sample, a feedback reading,
a clock, a path) and return a :class:`CheckResult`; the commands in ``chargerfw.cli`` gather
the inputs (from the running service or from the hardware under the hardware lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import io
import json
import math
import os
import shutil
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol

import tomlkit
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

from chargerfw.config import StationConfig
from chargerfw.drivers.board import Board, ConnectorDevices
from chargerfw.drivers.contactor import ContactorFeedback
from chargerfw.drivers.fault_inputs import RcmSelfTestUnavailableError
from chargerfw.drivers.lock import LockResult
from chargerfw.drivers.meter.plausibility import (
    PlausibilityLimits,
    frequency_problem,
    sample_problem,
    voltage_problem,
)
from chargerfw.drivers.pilot import ControlPilot, PilotReading
from chargerfw.drivers.types import MeterSample, PilotMode, PilotState
from chargerfw.hwlock import runtime_dir
from chargerfw.ocpp.connection import SUBPROTOCOL, ConnectionSetupError, OcppConnection

# -- exit codes (documented in docs/technician.md) -------------------------------------------------
EXIT_OK = 0
EXIT_FAILED = 1  # a check failed, or the command refused to act (vehicle connected, no confirmation)
EXIT_USAGE = 2  # bad options, invalid config, nothing configured to test
EXIT_UNREACHABLE = 3  # the service, the store or a device cannot be reached

REDACTED = "***"
# Config and payload keys whose values never leave the charger.
SECRET_KEY_NAMES = frozenset({"password", "authorizationkey", "authorization_key", "secret",
                              "token", "private_key", "key_password"})


def is_secret_key(name: str) -> bool:
    return name.lower() in SECRET_KEY_NAMES


def redact(node: Any) -> Any:
    """A copy of a JSON-like tree with the values of secret-named keys replaced."""
    if isinstance(node, Mapping):
        return {k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v))
                for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [redact(v) for v in node]
    return node


def redact_toml_text(text: str) -> str:
    """The station file with secret values replaced, comments and layout kept."""
    document = tomlkit.parse(text)

    def scrub(table: Any) -> None:
        for key in list(table.keys()):
            value = table[key]
            if isinstance(value, Mapping):
                scrub(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        scrub(item)
            elif is_secret_key(str(key)) and value not in (None, ""):
                table[key] = REDACTED

    scrub(document)
    return tomlkit.dumps(document)


# -- the control socket ----------------------------------------------------------------------------
CONTROL_SOCKET_NAME = "control.sock"
METHOD_NOT_FOUND = -32601  # JSON-RPC codes, as chargerfw.runtime.control answers them
INVALID_PARAMS = -32602
REFUSED = -32000


CONTROL_SOCKET_ENV = "CHARGERFW_CONTROL_SOCKET"  # as `chargerfw run --control-socket` reads it


def control_socket_path() -> Path:
    """``$CHARGERFW_CONTROL_SOCKET``, else ``$CHARGERFW_RUNTIME_DIR/control.sock``."""
    explicit = os.environ.get(CONTROL_SOCKET_ENV)
    return Path(explicit) if explicit else runtime_dir() / CONTROL_SOCKET_NAME


class ServiceUnavailable(Exception):
    """Nobody answers on the control socket (service stopped, socket missing, timeout)."""


class ServiceError(Exception):
    """The service answered with an error object."""

    def __init__(self, method: str, code: object, message: str) -> None:
        self.method = method
        self.code = code
        self.message = message
        super().__init__(f"{method}: {message} ({code})")

    @property
    def method_missing(self) -> bool:
        return self.code == METHOD_NOT_FOUND

    @property
    def refused(self) -> bool:
        """The station refused (condition present, vehicle connected, ...) or bad params."""
        return self.code in (REFUSED, INVALID_PARAMS)


def call_service(method: str, *, timeout_s: float = 5.0, socket_path: Path | None = None,
                 **params: Any) -> Any:
    """One request on the service's control socket (``chargerfw.runtime.control.call``): its
    ``result``, or :class:`ServiceError` / :class:`ServiceUnavailable`."""
    from chargerfw.runtime.control import ControlError, ControlUnavailable, call

    path = socket_path or control_socket_path()
    try:
        return call(path, method, timeout_s=timeout_s, **params)
    except ControlUnavailable as exc:
        raise ServiceUnavailable(str(exc)) from None
    except TimeoutError:
        raise ServiceUnavailable(f"no answer on {path} within {timeout_s:g} s") from None
    except ControlError as exc:
        raise ServiceError(method, exc.code, exc.message) from None
    except (OSError, ValueError) as exc:  # reset mid-reply, garbage instead of JSON
        raise ServiceUnavailable(f"{path}: {exc}") from None


def service_status(timeout_s: float = 3.0) -> dict[str, Any] | None:
    """The service's ``status`` result, or None when it is not running."""
    try:
        result = call_service("status", timeout_s=timeout_s)
    except (ServiceUnavailable, ServiceError):
        return None
    return result if isinstance(result, dict) else {"status": result}


# -- checks ----------------------------------------------------------------------------------------
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


async def probe_backend(config: StationConfig, password: str | None = None,
                        timeout_s: float = 5.0) -> BackendProbe:
    """Open the OCPP WebSocket the way the service does (profile, credentials, CA), note the
    server's HTTP ``Date`` header, and close at once without sending a CALL."""
    ocpp = config.ocpp
    if ocpp is None:
        return BackendProbe(False, "no [ocpp] section in the config")
    connection = OcppConnection(ocpp.url, config.station.id, security_profile=ocpp.security_profile,
                                password=password or ocpp.password, ca_file=ocpp.ca_file,
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
                  "AuthorizationKey and, for wss, the CA file")


# -- support bundle --------------------------------------------------------------------------------
@dataclass
class BundleFile:
    name: str
    content: bytes

    @classmethod
    def json(cls, name: str, data: Any) -> BundleFile:
        return cls(name, (json.dumps(data, indent=2, default=str) + "\n").encode())

    @classmethod
    def text(cls, name: str, text: str) -> BundleFile:
        return cls(name, text.encode())


@dataclass
class Bundle:
    """The support bundle's files, written as one tar.gz under a top folder."""

    folder: str
    files: list[BundleFile] = field(default_factory=list)

    def add(self, item: BundleFile) -> None:
        self.files.append(item)

    def write(self, path: Path) -> None:
        # Written under a temporary name and renamed: a half-written bundle never looks complete.
        partial = path.with_name(path.name + ".partial")
        now = time.time()
        with tarfile.open(partial, "w:gz") as tar:
            for item in self.files:
                info = tarfile.TarInfo(f"{self.folder}/{item.name}")
                info.size = len(item.content)
                info.mtime = int(now)
                info.mode = 0o600
                tar.addfile(info, io.BytesIO(item.content))
        os.replace(partial, path)


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


# -- guarded hardware tests ------------------------------------------------------------------------
# The sequences behind `chargerfw test ...`, on a board's devices. The CLI runs them under the
# hardware lock when the service is stopped; the service can run the same ones (in a thread:
# they block for up to a second or two) for its test.* control methods. They check nothing
# about vehicles or transactions: the caller refuses first.
VEHICLE_STATES = {PilotState.B.value, PilotState.C.value, PilotState.D.value}
# What the pilot test offers, in amps (capped at the connector's maximum).
PILOT_TEST_CURRENTS_A = (6.0, 16.0, 32.0)


class Refusal(Exception):
    """A guarded test will not run; the message says why."""


def settled_reading(pilot: ControlPilot) -> PilotReading:
    """Read until the classifier has confirmed the state (it needs confirm_reads agreeing reads)."""
    reading = pilot.read()
    for _ in range(pilot.classifier.confirm_reads + 1):
        reading = pilot.read()
    return reading


class TestableContactor(Protocol):
    """What the contactor test drives: the driver itself (direct path) or the service's
    stand-in that closes through the safety supervisor."""

    @property
    def feedback_timeout_s(self) -> float: ...

    def close(self) -> None: ...

    def open(self) -> None: ...

    def check_feedback(self) -> ContactorFeedback: ...


def settle_feedback(contactor: TestableContactor) -> ContactorFeedback:
    """The mirror's verdict once the contacts had their feedback_timeout_s to move."""
    deadline = time.monotonic() + contactor.feedback_timeout_s + 0.2
    while True:
        feedback = contactor.check_feedback()
        if feedback is not ContactorFeedback.PENDING or time.monotonic() > deadline:
            return feedback
        time.sleep(0.02)


def run_contactor_test(devices: ConnectorDevices) -> dict[str, Any]:
    """Close, check the mirror; open, check again. The contactor is open when this returns."""
    return run_contactor_sequence(devices.contactor)


def run_contactor_sequence(contactor: TestableContactor) -> dict[str, Any]:
    """The contactor test on anything that closes, opens and reads its mirror. A ``close()``
    that raises (refused by the safety supervisor) ends the test with the contactor open."""
    steps: list[dict[str, Any]] = []
    before = settle_feedback(contactor)
    steps.append({"step": "before", "commanded": "open", "feedback": before.value})
    if before is ContactorFeedback.WELDED:
        return {"passed": False, "result": "welded", "steps": steps}
    try:
        contactor.close()
        closed = settle_feedback(contactor)
        steps.append({"step": "close", "commanded": "closed", "feedback": closed.value})
    finally:
        contactor.open()
    opened = settle_feedback(contactor)
    steps.append({"step": "open", "commanded": "open", "feedback": opened.value})
    if opened is ContactorFeedback.WELDED:
        verdict = "welded"
    elif closed is ContactorFeedback.FAILED_TO_CLOSE:
        verdict = "failed_to_close"
    else:
        verdict = "ok"
    return {"passed": verdict == "ok", "result": verdict, "steps": steps}


def run_rcd_test(board: Board) -> dict[str, Any]:
    """Pulse the RCM test output (contactors opened first); :class:`Refusal` if the RCM has
    no test output or is already tripped."""
    assert board.rcm is not None
    board.open_all_contactors()  # a test trip is a trip: nothing may be live during it
    try:
        outcome = board.rcm.self_test()
    except RcmSelfTestUnavailableError as exc:
        raise Refusal(str(exc)) from None
    return {"passed": outcome.passed, "tripped": outcome.tripped, "cleared": outcome.cleared,
            "trip_time_s": outcome.trip_time_s}


def _expected_states(output: str, vehicle: bool) -> set[str]:
    if output == PilotMode.STATE_F.value:
        return {PilotState.F.value}
    if not vehicle:
        return {PilotState.A.value}
    if output == PilotMode.STANDBY.value:
        return {PilotState.B.value}
    return VEHICLE_STATES


def run_pilot_test(devices: ConnectorDevices, max_current_a: float) -> dict[str, Any]:
    """Offer standby, a few currents and state F; read back each classified state. Leaves the
    pilot in standby (a service restores its own output after)."""
    pilot = devices.pilot
    steps: list[dict[str, Any]] = []

    def step(output: str, amps: float | None) -> dict[str, Any]:
        reading = settled_reading(pilot)
        return {"output": output, "current_a": amps, "duty_percent": round(reading.duty_percent, 1),
                "state": reading.state.value, "high_v": round(reading.high_v, 2),
                "low_v": round(reading.low_v, 2)}

    try:
        pilot.set_standby()
        first = step(PilotMode.STANDBY.value, None)
        vehicle = first["state"] in VEHICLE_STATES
        steps.append(first)
        for amps in sorted({min(a, max_current_a) for a in PILOT_TEST_CURRENTS_A}):
            pilot.set_current_limit(amps)
            steps.append(step(PilotMode.PWM.value, amps))
        pilot.set_state_f()
        steps.append(step(PilotMode.STATE_F.value, None))
    finally:
        pilot.set_standby()
    for s in steps:
        s["expected"] = sorted(_expected_states(s["output"], vehicle))
        s["ok"] = s["state"] in s["expected"]
    return {"passed": all(s["ok"] for s in steps), "vehicle": vehicle, "steps": steps}


def run_lock_test(devices: ConnectorDevices) -> dict[str, Any]:
    """Lock, then unlock (always), each confirmed by the feedback switch if there is one."""
    lock = devices.lock
    assert lock is not None
    steps = []
    locked = LockResult.FAILED
    try:
        locked = lock.lock()
        steps.append({"command": "lock", "result": locked.value})
    finally:
        unlocked = lock.unlock()
        steps.append({"command": "unlock", "result": unlocked.value})
    passed = locked is LockResult.LOCKED and unlocked is LockResult.UNLOCKED
    return {"passed": passed, "feedback": lock.has_feedback, "steps": steps}
