"""Logging for journald: one line per event, ``level event key=value ...``, no timestamps
(journald adds its own) and never a secret."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import EventDict, WrappedLogger

# Field names whose values are never written to a log.
SECRET_KEYS = frozenset({"password", "authorization_key", "token", "auth", "secret", "credentials"})


def _redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    for key in event.keys() & SECRET_KEYS:
        event[key] = "***"
    return event


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger (libraries log through it)."""
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=numeric, stream=stream or sys.stdout, format="%(levelname)s %(name)s %(message)s",
        force=True,
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _redact,
            structlog.processors.format_exc_info,
            structlog.processors.KeyValueRenderer(
                key_order=["level", "event"], drop_missing=True, sort_keys=False
            ),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> Any:
    """A structured logger: ``log.info("meter.fault", kind="timeout", model="sdm630")``."""
    return structlog.get_logger(name)
