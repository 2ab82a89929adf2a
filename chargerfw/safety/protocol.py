"""The safety process's socket: newline-delimited JSON messages, each a tagged struct.

The station (or a technician's command) connects, says :class:`Hello`, and then sends requests;
the safety process answers requests that carry an ``id`` with a :class:`Reply`, streams
:class:`FaultEvent` / :class:`PilotEvent` / :class:`ThermalEvent` as they happen, and a
:class:`State` snapshot every :data:`STATE_INTERVAL_S`, which is also how the station knows the
safety process is alive and its monitor current. A malformed line is answered with a
:class:`Reply` that says what is wrong (``id`` 0 when none could be read) and changes nothing.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from chargerfw.drivers.types import MeterSample, PilotMode, PilotState
from chargerfw.station.faults import FaultKind
from chargerfw.station.technician import HardwareTest

STATE_INTERVAL_S = 0.1
MAX_LINE_BYTES = 64 * 1024

Role = Literal["station", "technician"]


class _Message(msgspec.Struct, tag_field="type"):
    pass


# ---- to the safety process ------------------------------------------------------------------


class Hello(_Message, tag="hello"):
    role: Role
    name: str = ""


class Heartbeat(_Message, tag="heartbeat"):
    pass


class Close(_Message, tag="close"):
    connector: int


class Open(_Message, tag="open"):
    connector: int


class OpenAll(_Message, tag="open_all"):
    pass


class SetPilot(_Message, tag="set_pilot"):
    connector: int
    mode: PilotMode
    current_a: float | None = None


class Meter(_Message, tag="meter"):
    connector: int
    sample: MeterSample


class MeterFault(_Message, tag="meter_fault"):
    connector: int
    active: bool
    detail: str = ""


class DriveLock(_Message, tag="drive_lock"):
    id: int
    connector: int
    locked: bool


class ClearFault(_Message, tag="clear_fault"):
    id: int
    kind: FaultKind
    connector: int


class RunTest(_Message, tag="run_test"):
    """A technician's hardware test (the caller refused first); answered with its result."""

    id: int
    test: HardwareTest
    connector: int = 0


class Simulate(_Message, tag="simulate"):
    """A ``sim.*`` control method for the simulated world the safety process holds."""

    id: int
    method: str
    params: dict[str, Any] = {}


Request = (
    Hello
    | Heartbeat
    | Close
    | Open
    | OpenAll
    | SetPilot
    | Meter
    | MeterFault
    | DriveLock
    | ClearFault
    | RunTest
    | Simulate
)

# ---- from the safety process ----------------------------------------------------------------


class Reply(_Message, tag="reply"):
    id: int
    ok: bool
    error: str | None = None
    result: Any = None


class FaultEvent(_Message, tag="fault"):
    kind: FaultKind
    connector: int
    active: bool
    detail: str = ""
    timestamp: float = 0.0


class PilotEvent(_Message, tag="pilot"):
    connector: int
    pilot: PilotState


class ThermalEvent(_Message, tag="thermal"):
    connector: int
    limit_a: float | None


class ConnectorState(msgspec.Struct):
    connector: int
    pilot: PilotState | None
    contactor_closed: bool
    temperature_c: float | None


class State(_Message, tag="state"):
    monitor_current: bool
    connectors: list[ConnectorState]
    faults: list[FaultEvent]
    sim: dict[str, Any] | None = None  # what the simulated world shows (simulated stations)
    # How often the tamper contact ([security.tamper]) has opened since the safety process
    # started (None: no contact): the station records one TamperDetectionActivated for each,
    # however short, without the security log being a safety matter.
    tamper_openings: int | None = None


Answer = Reply | FaultEvent | PilotEvent | ThermalEvent | State

_encoder = msgspec.json.Encoder()
request_decoder = msgspec.json.Decoder(Request)
answer_decoder = msgspec.json.Decoder(Answer)


def encode(message: _Message) -> bytes:
    """One line for the socket."""
    return _encoder.encode(message) + b"\n"
