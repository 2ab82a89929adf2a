"""Scenario files for ``chargerfw sim fleet``: what each simulated charger does, step by step.

A scenario is TOML, validated with msgspec; every error names the key and the step number
(``step[3] (charge).power_w: ...``), in the style of the station config::

    name = "basic-session"
    repeat = 2          # each charger runs the steps this many times
    stagger_s = 0.5     # charger n starts n * stagger_s after the first (no connect storm)
    pause_s = 5         # between two runs of the steps on one charger

    [[step]]
    action = "plug_in"

    [[step]]
    action = "tap"              # no uid: the charger's own card (see charger_uid)

    [[step]]
    action = "charge"
    duration_s = 30
    power_w = 11000             # or current_a = 16 (per phase)

    [[step]]
    action = "tap"              # the same card again stops the session

    [[step]]
    action = "unplug"

Actions: ``plug_in``, ``tap`` (``uid``, ``expect``), ``charge`` (``duration_s``, ``power_w`` or
``current_a``), ``suspend`` / ``resume`` (the EV stops / starts drawing), ``fault`` (``kind``:
rcd | estop | overtemp | weld | overcurrent, optional ``clear_after_s``), ``wait``
(``duration_s``), ``unplug``, ``await_remote_start`` / ``await_remote_stop`` (wait until the
backend starts or stops a session, with ``timeout_s``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from chargerfw.drivers.readers.base import id_tag_to_uid
from chargerfw.tomlfile import TomlFileError, read_toml
from chargerfw.validation import FieldError, Invalid, Problem, convert

DEFAULT_TIMEOUT_S = 30.0
FaultName = Literal["rcd", "estop", "overtemp", "weld", "overcurrent"]
TapExpectation = Literal["auto", "start", "stop", "rejected", "any"]
Timeout = Annotated[float, Meta(gt=0, le=3600)]
LongTimeout = Annotated[float, Meta(gt=0, le=86400)]
Duration = Annotated[float, Meta(ge=0, le=86400)]


class ScenarioError(TomlFileError):
    """A scenario that cannot be run; the message names each bad key and step."""


# Unknown keys are typos until proven otherwise. The step's kind is its ``action`` key.
class _Step(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
            tag_field="action"):
    @property
    def action(self) -> str:
        return str(self.__struct_config__.tag)


class PlugIn(_Step, frozen=True, kw_only=True, tag="plug_in"):
    """The vehicle plugs in (pilot state B)."""


class Tap(_Step, frozen=True, kw_only=True, tag="tap"):
    """A card on the reader. ``expect``: ``auto`` = a session starts if none runs, else the
    running one stops; ``rejected`` = the station refuses the card; ``any`` = not checked."""

    uid: str | None = None  # hex; default: the charger's own card
    expect: TapExpectation = "auto"
    timeout_s: Timeout = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.uid is not None:
            try:
                id_tag_to_uid(self.uid)  # raises ValueError with the reason
            except ValueError as exc:
                raise FieldError("uid", str(exc)) from None
            uid = self.uid.replace(":", "").replace(" ", "").replace("-", "").upper()
            msgspec.structs.force_setattr(self, "uid", uid)


class Charge(_Step, frozen=True, kw_only=True, tag="charge"):
    """The vehicle asks for energy (state C) and draws ``power_w`` (total) or ``current_a``
    (per phase), capped by what the station offers. The step starts when power flows and
    lasts ``duration_s``; the vehicle goes on drawing until suspend, tap, unplug or a fault."""

    duration_s: Duration
    power_w: Annotated[float, Meta(gt=0, le=100_000)] | None = None
    current_a: Annotated[float, Meta(gt=0, le=80)] | None = None
    timeout_s: Timeout = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if (self.power_w is None) == (self.current_a is None):
            raise ValueError("give exactly one of power_w or current_a")


class Suspend(_Step, frozen=True, kw_only=True, tag="suspend"):
    """The vehicle stops drawing (state B: SuspendedEV); the session goes on."""


class Resume(_Step, frozen=True, kw_only=True, tag="resume"):
    """The vehicle draws again at the power of its last charge step."""


class Fault(_Step, frozen=True, kw_only=True, tag="fault"):
    """Inject a fault and wait until the backend is told (status Faulted). ``clear_after_s``:
    remove its cause after that long (a technician clears the latched kinds); ``weld`` and
    ``overcurrent`` clear for good only when the vehicle unplugs (or, for weld, by the
    technician after the repair)."""

    kind: FaultName
    clear_after_s: Duration | None = None
    timeout_s: Timeout = DEFAULT_TIMEOUT_S


class Wait(_Step, frozen=True, kw_only=True, tag="wait"):
    duration_s: Duration


class Unplug(_Step, frozen=True, kw_only=True, tag="unplug"):
    """The vehicle unplugs (a running session ends with EVDisconnected)."""


class AwaitRemoteStart(_Step, frozen=True, kw_only=True, tag="await_remote_start"):
    """Wait until a session runs that this charger did not start from a step (the backend's
    RemoteStartTransaction)."""

    timeout_s: LongTimeout = 60.0


class AwaitRemoteStop(_Step, frozen=True, kw_only=True, tag="await_remote_stop"):
    """Wait until the running session ends (the backend's RemoteStopTransaction)."""

    timeout_s: LongTimeout = 60.0


Step = (PlugIn | Tap | Charge | Suspend | Resume | Fault | Wait | Unplug | AwaitRemoteStart
        | AwaitRemoteStop)
ACTIONS = ("plug_in", "tap", "charge", "suspend", "resume", "fault", "wait", "unplug",
           "await_remote_start", "await_remote_stop")


class Scenario(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)] = "scenario"
    description: str = ""
    repeat: Annotated[int, Meta(ge=1, le=100_000)] = 1
    stagger_s: Annotated[float, Meta(ge=0, le=3600)] = 0.2
    pause_s: Duration = 0.0
    step: Annotated[list[Step], Meta(min_length=1)]


def _problem(problem: Problem, data: dict[str, Any]) -> str:
    loc = problem.loc
    if loc and loc[0] == "step" and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        raw_steps = data.get("step")
        raw = raw_steps[index] if isinstance(raw_steps, list) and index < len(raw_steps) else None
        action = raw.get("action") if isinstance(raw, dict) else None
        key = f"step[{index + 1}]"
        if action in ACTIONS:  # else the problem is the action itself
            key += f" ({action})"
        key += "".join(f".{part}" for part in loc[2:])
    else:
        key = ".".join(str(p) for p in loc) or "(top level)"
    return f"{key}: {problem.message}"


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed TOML document."""
    if "step" in data and isinstance(data["step"], dict):
        data = {**data, "step": [data["step"]]}  # one [step] table: a list of one
    try:
        return convert(data, Scenario, strict=False)
    except Invalid as exc:
        raise ScenarioError(source, [_problem(p, data) for p in exc.problems]) from None


def load_scenario(path: Path | str) -> Scenario:
    """Read and validate a scenario file; :class:`ScenarioError` on any problem."""
    path = Path(path)
    data = read_toml(path, ScenarioError)
    data.setdefault("name", path.stem)
    return parse_scenario(data, str(path))


def charger_uid(index: int) -> str:
    """The card a fleet charger taps when a step names none: 7 bytes, ``F1EE7`` then the
    charger's number (1-based) in hex, so each charger has its own idTag."""
    if not 1 <= index < 16**9:
        raise ValueError(f"charger index {index} out of range")
    return f"F1EE7{index:09X}"
