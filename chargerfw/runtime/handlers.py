"""The control socket's methods as the running service answers them: status, faults and fault
clearing, the latest meter sample, the next card on the reader, OCPP key changes, and the
technician's hardware tests (:mod:`chargerfw.runtime.hwtests`)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chargerfw import __version__
from chargerfw.drivers.types import TagEvent
from chargerfw.runtime.control import InvalidParams, Refused
from chargerfw.runtime.hwtests import HardwareTests
from chargerfw.station.faults import FaultKind

if TYPE_CHECKING:
    from chargerfw.runtime.station import StationRuntime


class ControlHandlers:
    """The service's answers to the control socket, over one runtime's parts."""

    def __init__(self, runtime: StationRuntime) -> None:
        self._rt = runtime
        self.tests = HardwareTests(runtime)

    def handlers(self) -> dict[str, Callable[..., Any]]:
        """Method name -> handler, as the control socket serves them."""
        handlers: dict[str, Callable[..., Any]] = {
            "status": self.status,
            "faults": self.faults,
            "fault.clear": self.clear_fault,
            "meter.sample": self.meter_sample,
            "rfid.next": self.next_tap,
            "config.set": self.set_ocpp_key,
            "test.contactor": self.tests.test_contactor,
            "test.rcd": self.tests.test_rcd,
            "test.pilot": self.tests.test_pilot,
            "test.lock": self.tests.test_lock,
        }
        if self._rt.sim is not None:
            handlers.update(self._rt.sim.control_handlers())
        return handlers

    def status(self) -> dict[str, Any]:
        assert self._rt.client is not None and self._rt.supervisor is not None
        snapshot = self._rt.client.status_snapshot()
        return {
            "station": self._rt.config.station.id,
            "firmware_version": __version__,
            "hardware": self._rt.config.hardware,
            "started_at": self._rt.started_at,
            "available": self._rt.station_available,
            "connectors": [c.snapshot() for c in self._rt.controllers.values()],
            "backend": {
                "url": self._rt.config.ocpp.url if self._rt.config.ocpp else None,
                "online": snapshot["online"],
                "registration": snapshot["registration"],
                "link": snapshot["link"],
                "clock_offset_s": snapshot["clock_offset_s"],
            },
            "outbox": {"pending": snapshot["outbox_pending"], "dead": snapshot["outbox_dead"]},
            "faults": self._active_faults(),
            "reader": None if self._rt.reader is None else {
                "name": self._rt.reader.name, "available": self._rt.reader.available},
        }

    def _active_faults(self) -> list[dict[str, Any]]:
        assert self._rt.supervisor is not None
        return [
            {"kind": f.kind.value, "connector": f.connector_id, "detail": f.detail,
             "since": f.timestamp, "error_code": f.spec.error_code.value,
             "clears": f.spec.clear_rule.value}
            for f in sorted(self._rt.supervisor.active_faults(),
                            key=lambda f: (f.timestamp, f.kind.value))
        ]

    def faults(self, history: bool = False, limit: int = 100) -> dict[str, Any]:
        assert self._rt.store is not None
        result: dict[str, Any] = {"active": self._active_faults()}
        if history:
            result["history"] = [
                {"code": r.code, "connector": r.connector_id, "detail": r.detail,
                 "raised_at": r.raised_at, "cleared_at": r.cleared_at,
                 "needs_technician": r.needs_technician}
                for r in self._rt.store.faults(limit=int(limit))
            ]
        return result

    def clear_fault(self, kind: str, connector: int | None = None) -> dict[str, Any]:
        assert self._rt.supervisor is not None
        try:
            fault_kind = FaultKind(kind)
        except ValueError:
            raise InvalidParams(f"unknown fault kind {kind!r}; known: "
                                + ", ".join(k.value for k in FaultKind)) from None
        if connector is not None and connector not in self._rt.controllers:
            raise InvalidParams(f"no connector {connector}")
        active = {(f.kind, f.connector_id) for f in self._rt.supervisor.active_faults()}
        if (fault_kind, connector) not in active:
            raise Refused(f"no active {kind} fault on "
                          + ("the station" if connector is None else f"connector {connector}"))
        if not self._rt.supervisor.clear_by_technician(fault_kind, connector):
            raise Refused(f"{kind} cannot be cleared: its condition is still present")
        return {"cleared": kind, "connector": connector}

    def meter_sample(self, connector: int = 1) -> dict[str, Any] | None:
        """The connector's latest meter sample (MeterSample fields and its age), or None."""
        controller = self._rt.controllers.get(connector) if isinstance(connector, int) else None
        if controller is None:
            raise InvalidParams(f"no connector {connector!r}")
        sample = controller.latest_sample
        if sample is None:
            return None
        return {**dataclasses.asdict(sample), "age_s": round(time.time() - sample.timestamp, 1)}

    async def next_tap(self, wait_s: float = 60.0) -> dict[str, Any]:
        """Wait for the next card presented to the station's reader (the station handles it as
        usual too). ``{"id_tag": None}`` if none came within ``wait_s``."""
        if self._rt.reader is None:
            raise Refused("the station has no [reader]")
        wait = float(wait_s)
        if not 0 < wait <= 3600:
            raise InvalidParams("wait_s must be > 0 and <= 3600")
        future: asyncio.Future[TagEvent] = asyncio.get_running_loop().create_future()
        self._rt.tap_waiters.append(future)
        try:
            event = await asyncio.wait_for(future, wait)
        except TimeoutError:
            return {"id_tag": None, "reader": self._rt.reader.name}
        finally:
            with contextlib.suppress(ValueError):
                self._rt.tap_waiters.remove(future)
        return {"id_tag": event.id_tag, "uid": event.uid.hex().upper(), "reader": event.reader,
                "at": event.timestamp}

    def set_ocpp_key(self, key: str, value: str) -> dict[str, Any]:
        """ChangeConfiguration from the technician: validated and persisted like the
        backend's, applied at once (the same listeners run)."""
        assert self._rt.client is not None
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidParams("key and value must be strings")
        status, reason = self._rt.client.keys.change(key, value)
        if status.value in ("Accepted", "RebootRequired"):
            self._rt.client.after_configuration_change()
        return {"key": key, "status": status.value, "reason": reason}
