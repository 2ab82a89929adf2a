"""The station runtime: ``chargerfw run`` (drivers + safety + state machines + OCPP) and the
answers to its control socket (:mod:`chargerfw.control` holds the socket and its API)."""

from chargerfw.runtime.station import HARD_RESET_EXIT_CODE, RunOutcome, StationRuntime

__all__ = ["HARD_RESET_EXIT_CODE", "RunOutcome", "StationRuntime"]
