"""How a contact is wired to an input pin, and what each level of the pin then means.

A contact (an RCM's trip relay, an emergency-stop button, a contactor's mirror contact) sits
between the pin and the opposite of the pin's pull: closed, it holds the line away from the
pull; open, it lets the line go to the pull level. Every input says something is *active*: a
fault input that it tripped, a mirror contact that the main contacts are closed.

- ``normally_closed``: the contact is closed while the input is not active and opens when it
  is. A cut wire or a floating pin sits at the pull level, which reads as active: a trip, or
  main contacts closed (a welded contactor when it is commanded open). This is fail-safe.
- ``normally_open``: the contact closes when the input is active. A cut wire reads as not
  active (no trip, main contacts open): the broken wire hides the fault.

The drivers and their simulated twins take their levels from :class:`ContactWiring` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from chargerfw.config.station import StationConfig

Wiring = Literal["normally_closed", "normally_open"]
PullDirection = Literal["up", "down"]


@dataclass(frozen=True, slots=True)
class ContactWiring:
    """One input's contact wiring and the pull set on its pin."""

    wiring: Wiring
    pull: PullDirection

    @property
    def fail_safe(self) -> bool:
        """A cut wire or a floating pin reads as active."""
        return self.wiring == "normally_closed"

    @property
    def closed_level(self) -> bool:
        """The level (True = high) a closed contact holds the line at: away from the pull."""
        return self.pull == "down"

    def contact_closed(self, active: bool) -> bool:
        """Whether the contact is closed while the input is (or is not) active."""
        return active != self.fail_safe

    @property
    def active_level(self) -> bool:
        """The level that means active: the pull level when normally closed (the contact let
        go, or the wire is cut), the closed level when normally open."""
        return self.closed_level if self.contact_closed(True) else not self.closed_level


# The default of every safety input: a normally-closed contact to GND on a pulled-up line.
FAIL_SAFE_WIRING = ContactWiring("normally_closed", "up")


@dataclass(frozen=True, slots=True)
class SafetyInput:
    """A safety input of the station, as the config names and wires it."""

    key: str  # "rcm", "emergency_stop", "connector[1].contactor" (its mirror contact)
    wiring_key: str  # the key that sets its wiring
    wiring: ContactWiring
    danger: str  # what a cut wire does when the input is wired normally open

    @property
    def why_not_fail_safe(self) -> str:
        return f'{self.wiring_key} = "{self.wiring.wiring}": {self.danger}'


_TRIP_UNSEEN = "a cut wire or a floating pin reads as not tripped, so {} would not stop a charge"


def safety_inputs(config: StationConfig) -> list[SafetyInput]:
    """The configured fault inputs and mirror contacts."""
    found = []
    if config.rcm is not None:
        found.append(SafetyInput("rcm", "wiring", config.rcm.contact_wiring,
                                 _TRIP_UNSEEN.format("a residual current")))
    if config.emergency_stop is not None:
        found.append(SafetyInput("emergency_stop", "wiring", config.emergency_stop.contact_wiring,
                                 _TRIP_UNSEEN.format("a pressed emergency stop")))
    for c in config.connector:
        if c.contactor.feedback_pin is not None:
            found.append(SafetyInput(
                f"connector[{c.id}].contactor", "feedback_wiring",
                c.contactor.feedback_contact_wiring,
                "a cut feedback wire reads as main contacts open, so a welded contactor would "
                "read as ok"))
    return found


def inputs_not_fail_safe(config: StationConfig) -> list[SafetyInput]:
    """The safety inputs of a station on real hardware that are wired normally open. The
    station still runs with them; its start-up log and ``chargerfw selftest`` name them.
    Simulated hardware has no wire to break: none there."""
    if config.hardware != "pi":
        return []
    return [item for item in safety_inputs(config) if not item.wiring.fail_safe]


UNMONITORED_CONTACTOR = "no mirror contact (feedback_pin): a welded contactor would go unseen"


def contactors_without_mirror(config: StationConfig) -> list[str]:
    """The connectors of a station on real hardware whose contactor has no mirror contact
    (``feedback_pin``): a welded contactor there goes unseen. Allowed, and warned about."""
    if config.hardware != "pi":
        return []
    return [f"connector[{c.id}].contactor" for c in config.connector
            if c.contactor.feedback_pin is None]
