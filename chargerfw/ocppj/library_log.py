"""The loggers handed to the libraries of an OCPP link, at either end: the ``ocpp`` library's
charge points and ``websockets``' connections.

The library logs every frame at INFO, secrets included; we keep its lines at DEBUG with frames
redacted (our own structured log says what matters). It also logs an answered CALLERROR as an
ERROR with a traceback: that is an answer to the backend, not a failure of ours, so it becomes
a WARNING without one. A handler that fails with anything else stays an ERROR.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ocpp.exceptions import OCPPError

from chargerfw.ocppj.frames import redact_frame
from chargerfw.redact import redact_text


class RedactingLibraryLogger(logging.LoggerAdapter[logging.Logger]):
    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        def scrub(arg: object) -> object:
            if hasattr(arg, "to_json"):
                arg = arg.to_json()
            return redact_frame(arg) if isinstance(arg, str) else arg

        if level <= logging.INFO:
            level = min(level, logging.DEBUG)
        elif kwargs.get("exc_info") and isinstance(sys.exc_info()[1], OCPPError):
            level = logging.WARNING
            kwargs["exc_info"] = False
        if not self.logger.isEnabledFor(level):
            return  # every frame passes here: decode it for the log only if it is logged
        self.logger.log(level, msg, *(scrub(a) for a in args), **kwargs)


LIBRARY_LOGGER = RedactingLibraryLogger(logging.getLogger("ocpp"), {})


class RedactingWebsocketsLogger(logging.LoggerAdapter[logging.Logger]):
    """websockets logs the opening handshake's headers at DEBUG (``> Authorization: Basic
    ...``, reversible to the password) and every frame: each line is redacted as free text
    before it is written."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.logger.isEnabledFor(level):
            return  # every frame passes here: format it only if it is logged
        text = str(msg) % args if args else str(msg)
        self.logger.log(level, "%s", redact_text(text), **kwargs)


WEBSOCKETS_LOGGER = RedactingWebsocketsLogger(logging.getLogger("websockets.client"), {})
# The backend's end: the headers a charger sends (its Basic credentials) are redacted alike.
WEBSOCKETS_SERVER_LOGGER = RedactingWebsocketsLogger(logging.getLogger("websockets.server"), {})
