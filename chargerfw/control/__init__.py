"""The technician's control channel: the typed control API (:mod:`.api`), the socket the
running service serves (:mod:`.server`) and its client (:mod:`.client`), the guarded
hardware-test sequences (:mod:`.sequences`), and :mod:`.access`, through which the CLI reaches a
station whether its service runs or not.

The names below are the wire protocol's: its error codes and errors, and the raw client."""

from chargerfw.control.api import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    REFUSED,
    ControlError,
    InvalidParams,
    Method,
    Refused,
)
from chargerfw.control.client import SOCKET_NAME, ControlUnavailable, call

__all__ = [
    "INTERNAL_ERROR", "INVALID_PARAMS", "INVALID_REQUEST", "METHOD_NOT_FOUND", "PARSE_ERROR",
    "REFUSED", "SOCKET_NAME", "ControlError", "ControlUnavailable", "InvalidParams", "Method", "Refused", "call",
]
