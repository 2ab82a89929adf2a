"""The shared fakes of the test suite, one of each: a station port that records what the backend
asked, a contactor and a fault input for the safety supervisor, a clock, a meter sample, and
the one polling helper every async test waits with."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

from chargerfw.drivers.types import MeterSample


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0,
                     what: str = "condition", interval: float = 0.02) -> Any:
    """Poll ``predicate`` (plain or async) until it returns something truthy; return that.
    An AssertionError naming ``what`` if it does not within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(interval)


class FakeClock:
    """A clock a test moves by hand: ``clock()`` reads it, ``clock.now += 1`` moves it."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def meter_sample(wh: float, at: float | None = None) -> MeterSample:
    """A three-phase sample with ``wh`` on the energy register (taken now unless ``at``)."""
    return MeterSample(timestamp=time.time() if at is None else at, energy_import_wh=wh,
                       power_w=7360.0, voltage_l1_v=230.1, voltage_l2_v=230.2, voltage_l3_v=229.9,
                       current_l1_a=10.5, current_l2_a=10.6, current_l3_a=10.4, frequency_hz=50.01)


class FakeStation:
    """A :class:`~chargerfw.ocpp.station_port.StationPort` that records what the backend asked
    the station to do and answers Accepted (``availability_answer`` for ChangeAvailability)."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.confirmed: list[tuple[Any, ...]] = []
        self.infos: list[tuple[Any, ...]] = []
        self.availability_answer = "Accepted"

    def remote_start(self, id_tag: str, connector_id: int | None, authorize: bool) -> bool:
        self.calls.append(("remote_start", id_tag, connector_id, authorize))
        return True

    def remote_stop(self, connector_id: int) -> bool:
        self.calls.append(("remote_stop", connector_id))
        return True

    def change_availability(self, connector_id: int, operative: bool) -> str:
        self.calls.append(("change_availability", connector_id, operative))
        return self.availability_answer

    async def unlock(self, connector_id: int) -> str:
        self.calls.append(("unlock", connector_id))
        return "Unlocked"

    async def reset(self, kind: str) -> None:
        self.calls.append(("reset", kind))

    def transaction_confirmed(self, connector_id: int, local_id: int, transaction_id: int,
                              id_tag: str, info: dict[str, str]) -> None:
        self.confirmed.append((connector_id, local_id, transaction_id, id_tag, info))

    def id_tag_info_received(self, id_tag: str, info: dict[str, str]) -> None:
        self.infos.append((id_tag, info))


class FakeContactor:
    """Just enough contactor for the safety supervisor: the commanded state, interlocks, a
    settable feedback, and the threads that opened it."""

    def __init__(self) -> None:
        self.commanded_closed = False
        self.interlocks: set[str] = set()
        self.feedback = "no_feedback"
        self.opened_on: list[str] = []

    def open(self) -> None:
        if self.commanded_closed:
            self.opened_on.append(threading.current_thread().name)
        self.commanded_closed = False

    def close(self) -> None:
        if self.interlocks:
            raise RuntimeError(f"interlocked: {sorted(self.interlocks)}")
        self.commanded_closed = True

    def interlock(self, reason: str) -> None:
        self.interlocks.add(reason)
        self.open()

    def release_interlock(self, reason: str) -> None:
        self.interlocks.discard(reason)

    def check_feedback(self) -> str:
        return self.feedback


class FakeFaultInput:
    """A fault input (RCD, e-stop) a test trips and clears with :meth:`set`."""

    def __init__(self) -> None:
        self.is_tripped = False
        self._trip: list[Callable[[], None]] = []
        self._clear: list[Callable[[], None]] = []

    def on_trip(self, callback: Callable[[], None]) -> None:
        self._trip.append(callback)

    def on_clear(self, callback: Callable[[], None]) -> None:
        self._clear.append(callback)

    def refresh(self) -> bool:
        return self.is_tripped

    def set(self, tripped: bool) -> None:
        self.is_tripped = tripped
        for callback in self._trip if tripped else self._clear:
            callback()
