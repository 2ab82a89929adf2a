"""The simulated world of a ``hardware = "sim"`` station run inside the safety process: vehicles,
switches, chips and the meters, which are served over Modbus TCP so the station process reads
them with its real meter driver, as it reads a real meter on a Pi. The world runs on an event
loop of its own thread; the safety process hands it the ``sim.*`` control methods the station
forwards."""

from __future__ import annotations

import asyncio
import inspect
import threading
from typing import Any

from chargerfw.control.api import (
    ControlError,
    InvalidParams,
    Method,
    decode_request,
    encode_reply,
)
from chargerfw.logs import get_logger
from chargerfw.sim.hardware import SimulatedStation

log = get_logger(__name__)

CALL_TIMEOUT_S = 10.0


class SimulatedWorld:
    """A :class:`SimulatedStation` (without a reader: the reader is the station's) on its own
    thread's event loop."""

    def __init__(self, station: SimulatedStation) -> None:
        self.station = station
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="sim-world", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the simulated world did not start")

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with self.station.running():
            self._ready.set()
            await self._stopped.wait()

    def stop(self) -> None:
        loop, stopped = self._loop, self._stopped
        if loop is not None and stopped is not None:
            loop.call_soon_threadsafe(stopped.set)
        if self._thread is not None:
            self._thread.join(5)

    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Run one ``sim.*`` method; its reply in wire form. ValueError for bad params,
        RuntimeError when the world refuses (an unplugged vehicle asked to charge, ...)."""
        try:
            request = decode_request(method, params)
            handler = self.station.control_handlers().get(Method(method))
            if handler is None:
                raise InvalidParams(f"{method} is not a method of the simulated world")
            result = handler(request)
            if inspect.isawaitable(result):
                loop = self._loop
                assert loop is not None
                result = asyncio.run_coroutine_threadsafe(_await(result), loop).result(
                    CALL_TIMEOUT_S)
        except InvalidParams as exc:
            raise ValueError(exc.message) from None
        except ControlError as exc:
            raise RuntimeError(exc.message) from None
        return encode_reply(type(request), result)

    def snapshot(self) -> dict[str, Any]:
        """What the world shows now, per connector (for ``chargerfw status`` and tests)."""
        connectors = {}
        for cid, load in self.station.loads.items():
            parts = load.parts
            connectors[str(cid)] = {
                "vehicle": parts.vehicle.state.value,
                "contactor_closed": parts.contactor.is_closed,
                "current_a": round(load.current_a(), 2),
            }
        return {"connectors": connectors}


async def _await(awaitable: Any) -> Any:
    return await awaitable
