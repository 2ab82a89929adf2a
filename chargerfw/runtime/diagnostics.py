"""What the running station uploads for GetDiagnostics and GetLog: the support bundle (the
shared builder, :mod:`chargerfw.control.bundle`, with the service's own status) and the
security log. Implements :class:`~chargerfw.ocpp.station_port.LogSource`; its methods run on
a worker thread, so the status is read on the event loop and handed over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chargerfw.config import StationConfig
from chargerfw.control.bundle import TimeWindow, security_log_text, service_bundle
from chargerfw.logs import get_logger
from chargerfw.store import Store

log = get_logger(__name__)

STATUS_TIMEOUT_S = 10.0


class StationLogs:
    """The station's diagnostics and security log, written to a file on request."""

    def __init__(self, config: StationConfig, store: Store, status: Callable[[], Any],
                 loop: asyncio.AbstractEventLoop) -> None:
        self._config = config
        self._store = store
        self._status = status
        self._loop = loop

    def _status_from_loop(self) -> Any:
        async def read() -> Any:
            return self._status()

        try:
            return asyncio.run_coroutine_threadsafe(read(), self._loop).result(STATUS_TIMEOUT_S)
        except Exception as exc:  # the bundle goes out without it rather than not at all
            log.warning("diagnostics.status_unavailable", error=f"{type(exc).__name__}: {exc}")
            return {"service": f"status unavailable: {type(exc).__name__}"}

    def write_diagnostics(self, path: Path, since: float | None, until: float | None) -> None:
        bundle = service_bundle(self._config, self._store, self._status_from_loop(),
                                TimeWindow(since, until))
        bundle.write(path)

    def write_security_log(self, path: Path, since: float | None, until: float | None) -> None:
        path.write_text(security_log_text(self._store, TimeWindow(since, until)),
                        encoding="utf-8")
