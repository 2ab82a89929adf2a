"""Logging for journald: one line per event, ``level='warning' event='meter.fault' key=value
...``, no timestamps (journald adds its own) and never a secret.

The lines are written here rather than by a structured-logging library: that is all the
firmware asks of one, and the safety process, whose memory is locked, would otherwise carry the
library and the asyncio it imports (~6 MiB). Libraries' own logs go through the stdlib root
logger, set up by :func:`setup_logging` too."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from typing import Any, TextIO

# Field names whose values are never written to a log.
SECRET_KEYS = frozenset({"password", "authorization_key", "token", "auth", "secret", "credentials"})

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR, "critical": logging.CRITICAL}


class _Output:
    """Where lines go and from which level; one lock so lines from threads never interleave."""

    def __init__(self) -> None:
        self.level = logging.DEBUG
        self.stream: TextIO | None = None  # None: whatever sys.stdout is at the time
        self.captures: list[list[dict[str, Any]]] = []
        self.lock = threading.Lock()


_output = _Output()


def render_line(level: str, event: str, fields: dict[str, Any]) -> str:
    """``level='info' event='x' key=value ...``, values as repr, secrets redacted."""
    parts = [f"level={level!r}", f"event={event!r}"]
    for key, value in fields.items():
        shown = "***" if key in SECRET_KEYS else value
        parts.append(f"{key}={shown!r}")
    return " ".join(parts)


class _Logger:
    """A module's logger: ``log.info("meter.fault", kind="timeout", model="sdm630")``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def _emit(self, level: str, event: str, fields: dict[str, Any], with_traceback: bool) -> None:
        if with_traceback:
            fields = {**fields, "exception": traceback.format_exc().rstrip()}
        with _output.lock:
            for captured in _output.captures:
                captured.append({"event": event, "log_level": level, **fields})
            if _LEVELS[level] < _output.level:
                return
            stream = _output.stream or sys.stdout
            try:
                print(render_line(level, event, fields), file=stream, flush=True)
            except (OSError, ValueError):  # a closed or broken stream must not stop the caller
                pass

    def debug(self, event: str, **fields: Any) -> None:
        self._emit("debug", event, fields, False)

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields, False)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields, False)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields, False)

    def critical(self, event: str, **fields: Any) -> None:
        self._emit("critical", event, fields, False)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the traceback of the exception being handled."""
        self._emit("error", event, fields, True)


def setup_logging(level: str = "INFO", stream: Any = None) -> None:
    """Lines from ``level`` up to ``stream`` (standard output by default), and the stdlib root
    logger (libraries log through it) the same."""
    numeric = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=numeric, stream=stream or sys.stdout, format="%(levelname)s %(name)s %(message)s",
        force=True,
    )
    with _output.lock:
        _output.level = numeric
        _output.stream = stream


def get_logger(name: str) -> _Logger:
    """A module's logger: ``log.info("meter.fault", kind="timeout", model="sdm630")``."""
    return _Logger(name)


@contextlib.contextmanager
def capture_logs() -> Iterator[list[dict[str, Any]]]:
    """Every event logged inside the block, at any level, as dicts (``event``, ``log_level``
    and the fields), for tests and tools that check what was logged."""
    captured: list[dict[str, Any]] = []
    with _output.lock:
        _output.captures.append(captured)
    try:
        yield captured
    finally:
        with _output.lock:
            _output.captures.remove(captured)
