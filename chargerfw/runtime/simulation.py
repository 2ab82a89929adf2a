"""What the runtime needs from simulated hardware (``hardware = "sim"``).

The simulators live in :mod:`chargerfw.sim`, a layer above the runtime: whoever starts a
simulated station (``chargerfw run``, ``chargerfw sim station``, the fleet, a test) passes a
:data:`Simulator` in, so the runtime never imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from chargerfw.config import ConnectorSection, StationConfig
from chargerfw.control.api import Method
from chargerfw.control.server import Handler
from chargerfw.drivers.board import Board
from chargerfw.drivers.meter.driver import EnergyMeter
from chargerfw.drivers.readers import TokenReader
from chargerfw.safety.port import SafetyPort
from chargerfw.store import Store


class SimulatedHardware(Protocol):
    """The simulated world around one station: meters that follow the vehicles, and the
    ``sim.*`` control methods that plug a vehicle in, tap a card, trip the RCM, ..."""

    def running(self) -> AbstractAsyncContextManager[object]:
        """Serve the simulated meters and keep them following their loads while open."""
        ...

    def make_meter(self, section: ConnectorSection, connector_id: int) -> EnergyMeter:
        """The meter driver the runtime polls for one connector."""
        ...

    def control_handlers(self) -> dict[Method, Handler]:
        """The ``sim.*`` methods of the control socket."""
        ...


# Called once the board (None: the safety process holds it and the simulated world), the
# reader, the store and the safety port exist.
Simulator = Callable[[StationConfig, Board | None, TokenReader | None, Store, SafetyPort],
                     SimulatedHardware]


class SimulatorMissing(ValueError):
    """A ``hardware = "sim"`` station was started without simulated hardware to drive."""

    def __init__(self) -> None:
        super().__init__('hardware = "sim" needs simulated hardware: start it with chargerfw run '
                         "or chargerfw sim station, which provide it")
