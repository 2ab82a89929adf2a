"""Logging for journald: one line per event, ``level event key=value ...``, no timestamps
(journald adds its own) and never a secret.

structlog is loaded by the first log call, not when a module asks for its logger: a command
that logs nothing (``chargerfw status``, ``--help``) does not pay for structlog and the asyncio
it imports."""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from types import ModuleType

    from structlog.typing import EventDict, WrappedLogger

# Field names whose values are never written to a log.
SECRET_KEYS = frozenset({"password", "authorization_key", "token", "auth", "secret", "credentials"})

# What the last setup_logging asked for, until structlog is loaded: (level, stream).
_pending_setup: tuple[int, Any] | None = None
_loading = threading.Lock()  # the first log calls may come from several threads at once


def _redact(_logger: WrappedLogger, _method: str, event: EventDict) -> EventDict:
    for key in event.keys() & SECRET_KEYS:
        event[key] = "***"
    return event


def _import_structlog() -> ModuleType:
    if "structlog" in sys.modules or "rich" in sys.modules:
        return importlib.import_module("structlog")
    # structlog imports rich, when installed, for its console renderer's tracebacks (~50 ms and
    # ~4 MiB); these logs are key=value lines, so rich is hidden while structlog loads.
    sys.modules["rich"] = None  # type: ignore[assignment]  # import rich: ModuleNotFoundError
    try:
        return importlib.import_module("structlog")
    finally:
        del sys.modules["rich"]


def _structlog() -> ModuleType:
    """structlog, configured as the last :func:`setup_logging` asked."""
    global _pending_setup
    with _loading:
        structlog = _import_structlog()
        if _pending_setup is not None:
            level, stream = _pending_setup
            _pending_setup = None
            structlog.configure(
                processors=[
                    structlog.processors.add_log_level,
                    _redact,
                    structlog.processors.format_exc_info,
                    structlog.processors.KeyValueRenderer(
                        key_order=["level", "event"], drop_missing=True, sort_keys=False
                    ),
                ],
                wrapper_class=structlog.make_filtering_bound_logger(level),
                logger_factory=structlog.PrintLoggerFactory(stream),
                cache_logger_on_first_use=False,
            )
    return structlog


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Configure structlog and the stdlib root logger (libraries log through it)."""
    global _pending_setup
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=numeric, stream=stream or sys.stdout, format="%(levelname)s %(name)s %(message)s",
        force=True,
    )
    with _loading:
        _pending_setup = (numeric, stream or sys.stdout)
    if "structlog" in sys.modules:  # loaded already: configured now, as it would be on load
        _structlog()


class _Logger:
    """A module's structured logger; structlog's own is made on its first call."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, method: str) -> Any:
        if self._logger is None:
            self._logger = _structlog().get_logger(self._name)
        return getattr(self._logger, method)


def get_logger(name: str) -> Any:
    """A structured logger: ``log.info("meter.fault", kind="timeout", model="sdm630")``."""
    return _Logger(name)
