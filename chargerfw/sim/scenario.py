"""Scenario files for ``chargerfw sim fleet``: what each simulated charger does, step by step.

A scenario is TOML, validated with pydantic; every error names the key and the step number
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

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from chargerfw.drivers.readers.base import id_tag_to_uid
from chargerfw.tomlfile import TomlFileError, error_location, error_message, read_toml

DEFAULT_TIMEOUT_S = 30.0
FaultName = Literal["rcd", "estop", "overtemp", "weld", "overcurrent"]
TapExpectation = Literal["auto", "start", "stop", "rejected", "any"]


class ScenarioError(TomlFileError):
    """A scenario that cannot be run; the message names each bad key and step."""


class _Step(BaseModel):
    # Unknown keys are typos until proven otherwise.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlugIn(_Step):
    """The vehicle plugs in (pilot state B)."""

    action: Literal["plug_in"]


class Tap(_Step):
    """A card on the reader. ``expect``: ``auto`` = a session starts if none runs, else the
    running one stops; ``rejected`` = the station refuses the card; ``any`` = not checked."""

    action: Literal["tap"]
    uid: str | None = Field(default=None, description="hex UID; default: the charger's own card")
    expect: TapExpectation = "auto"
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)

    @field_validator("uid")
    @classmethod
    def _uid_is_hex(cls, value: str | None) -> str | None:
        if value is not None:
            id_tag_to_uid(value)  # raises ValueError with the reason
            return value.replace(":", "").replace(" ", "").replace("-", "").upper()
        return value


class Charge(_Step):
    """The vehicle asks for energy (state C) and draws ``power_w`` (total) or ``current_a``
    (per phase), capped by what the station offers. The step starts when power flows and
    lasts ``duration_s``; the vehicle goes on drawing until suspend, tap, unplug or a fault."""

    action: Literal["charge"]
    duration_s: float = Field(ge=0, le=86400)
    power_w: float | None = Field(default=None, gt=0, le=100_000)
    current_a: float | None = Field(default=None, gt=0, le=80)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)

    @model_validator(mode="after")
    def _one_of_power_or_current(self) -> Charge:
        if (self.power_w is None) == (self.current_a is None):
            raise ValueError("give exactly one of power_w or current_a")
        return self


class Suspend(_Step):
    """The vehicle stops drawing (state B: SuspendedEV); the session goes on."""

    action: Literal["suspend"]


class Resume(_Step):
    """The vehicle draws again at the power of its last charge step."""

    action: Literal["resume"]


class Fault(_Step):
    """Inject a fault and wait until the backend is told (status Faulted). ``clear_after_s``:
    remove its cause after that long (a technician clears the latched kinds); ``weld`` and
    ``overcurrent`` clear for good only when the vehicle unplugs (or, for weld, by the
    technician after the repair)."""

    action: Literal["fault"]
    kind: FaultName
    clear_after_s: float | None = Field(default=None, ge=0, le=86400)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=3600)


class Wait(_Step):
    action: Literal["wait"]
    duration_s: float = Field(ge=0, le=86400)


class Unplug(_Step):
    """The vehicle unplugs (a running session ends with EVDisconnected)."""

    action: Literal["unplug"]


class AwaitRemoteStart(_Step):
    """Wait until a session runs that this charger did not start from a step (the backend's
    RemoteStartTransaction)."""

    action: Literal["await_remote_start"]
    timeout_s: float = Field(default=60.0, gt=0, le=86400)


class AwaitRemoteStop(_Step):
    """Wait until the running session ends (the backend's RemoteStopTransaction)."""

    action: Literal["await_remote_stop"]
    timeout_s: float = Field(default=60.0, gt=0, le=86400)


Step = Annotated[
    PlugIn | Tap | Charge | Suspend | Resume | Fault | Wait | Unplug | AwaitRemoteStart
    | AwaitRemoteStop,
    Field(discriminator="action"),
]
ACTIONS = ("plug_in", "tap", "charge", "suspend", "resume", "fault", "wait", "unplug",
           "await_remote_start", "await_remote_stop")


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="scenario", min_length=1, max_length=100)
    description: str = ""
    repeat: int = Field(default=1, ge=1, le=100_000)
    stagger_s: float = Field(default=0.2, ge=0, le=3600)
    pause_s: float = Field(default=0.0, ge=0, le=86400)
    step: list[Step] = Field(min_length=1)


def _problem(err: ErrorDetails, data: dict[str, Any]) -> str:
    loc = error_location(err)
    key = ""
    if loc and loc[0] == "step" and len(loc) > 1 and isinstance(loc[1], int):
        index = loc[1]
        raw_steps = data.get("step")
        raw = raw_steps[index] if isinstance(raw_steps, list) and index < len(raw_steps) else None
        action = raw.get("action") if isinstance(raw, dict) else None
        rest = [str(p) for p in loc[2:] if p != action]  # drop the union tag from the path
        key = f"step[{index + 1}]" + (f" ({action})" if isinstance(action, str) else "")
        key += ("." + ".".join(rest)) if rest else ""
    else:
        key = ".".join(str(p) for p in loc) or "(top level)"
    message = error_message(err)
    if err["type"] == "union_tag_invalid":
        message = f"unknown action {err['input'].get('action')!r}; known: {', '.join(ACTIONS)}"
        key = key.split(" (")[0] + ".action"
    elif err["type"] == "union_tag_not_found":
        message = f"required key is missing (one of: {', '.join(ACTIONS)})"
        key += ".action"
    return f"{key}: {message}"


def parse_scenario(data: dict[str, Any], source: str = "<scenario>") -> Scenario:
    """Validate an already-parsed TOML document."""
    if "step" in data and isinstance(data["step"], dict):
        data = {**data, "step": [data["step"]]}  # one [step] table: a list of one
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(source, [_problem(e, data) for e in exc.errors()]) from None


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
