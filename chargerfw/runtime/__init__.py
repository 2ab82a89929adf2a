"""The station runtime: ``chargerfw run`` (drivers + safety + state machines + OCPP) and its
local control channel."""

from chargerfw.runtime.control import ControlError, ControlUnavailable, call, default_socket_path
from chargerfw.runtime.station import HARD_RESET_EXIT_CODE, RunOutcome, StationRuntime

__all__ = [
    "HARD_RESET_EXIT_CODE", "ControlError", "ControlUnavailable", "RunOutcome", "StationRuntime",
    "call", "default_socket_path",
]
