"""The control socket: the server over a small table of typed handlers (no station), the raw
and the typed client, the protocol's error codes, the socket's mode and its ownership."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chargerfw import control
from chargerfw.control.api import (
    FaultClearReply,
    FaultClearRequest,
    FaultsReply,
    FaultsRequest,
    InvalidParams,
    Method,
    RcmSwitchReply,
    Refused,
    RfidNextReply,
    RfidNextRequest,
    SimPlugRequest,
)
from chargerfw.control.client import ControlClient, ControlUnavailable, call
from chargerfw.control.server import ControlServer, ControlSocketInUse, ControlSocketLock
from chargerfw.station.enums import STATION
from chargerfw.station.faults import FaultKind

pytestmark = pytest.mark.timeout(30)


async def next_tap(request: RfidNextRequest) -> RfidNextReply:
    await asyncio.sleep(0.01)  # an async handler is awaited
    return RfidNextReply("04AA55", "sim", "04AA55", 1.0)


def clear(request: FaultClearRequest) -> FaultClearReply:
    if request.kind is FaultKind.CONTACTOR_WELDED:
        raise Refused("contactor_welded cannot be cleared: its condition is still present")
    if request.connector == 9:
        raise InvalidParams("no connector 9")
    if request.kind is FaultKind.OVER_CURRENT:
        raise ValueError("a handler's ValueError")
    if request.kind is FaultKind.INTERNAL_ERROR:
        raise RuntimeError("a bug")
    return FaultClearReply(request.kind, request.connector)


HANDLERS = {
    Method.FAULTS: lambda request: FaultsReply([]),
    Method.FAULT_CLEAR: clear,
    Method.RFID_NEXT: next_tap,
    Method.SIM_RCD_TRIP: lambda request: RcmSwitchReply("trip"),
}


@pytest.fixture
async def server(short_dir: Path) -> AsyncIterator[Path]:
    path = short_dir / "control.sock"
    served = ControlServer(path, HANDLERS)
    await served.start()
    try:
        yield path
    finally:
        await served.close()


async def ask(path: Path, method: str, **params: object) -> object:
    return await asyncio.to_thread(call, path, method, **params)


async def error_of(path: Path, method: str, **params: object) -> control.ControlError:
    with pytest.raises(control.ControlError) as caught:
        await ask(path, method, **params)
    return caught.value


async def test_typed_requests_get_typed_replies(server: Path) -> None:
    client = ControlClient(server)
    assert await asyncio.to_thread(client.request, FaultsRequest()) == FaultsReply([])
    reply = await asyncio.to_thread(client.request, RfidNextRequest(1.0))
    assert reply == RfidNextReply("04AA55", "sim", "04AA55", 1.0)
    cleared = await asyncio.to_thread(client.request,
                                      FaultClearRequest(FaultKind.RCD_TRIP_REPEATED))
    assert cleared == FaultClearReply(FaultKind.RCD_TRIP_REPEATED, STATION)
    assert await ask(server, "faults") == {"active": []}  # the JSON on the wire
    assert await ask(server, "sim.rcd_trip") == {"rcm": "trip"}
    assert await asyncio.to_thread(ControlClient(server).request,
                                   control.api.SimRcdTripRequest()) == RcmSwitchReply("trip")


async def test_error_codes(server: Path) -> None:
    assert (await error_of(server, "no.such.method")).code == control.METHOD_NOT_FOUND
    # A known method this server does not offer (sim.* on a real station): not found either.
    missing = await error_of(server, "sim.plug")
    assert missing.code == control.METHOD_NOT_FOUND and missing.method_missing
    bad = await error_of(server, "fault.clear", kind="gremlins")
    assert bad.code == control.INVALID_PARAMS and bad.message.startswith("fault.clear: kind: ")
    extra = await error_of(server, "faults", verbose=True)
    assert extra.code == control.INVALID_PARAMS and "verbose" in extra.message
    refused = await error_of(server, "fault.clear", kind="contactor_welded", connector=1)
    assert refused.code == control.REFUSED and "still present" in refused.message
    assert (await error_of(server, "fault.clear", kind="rcd_trip", connector=9)).message == \
        "no connector 9"
    value_error = await error_of(server, "fault.clear", kind="over_current")
    assert value_error.code == control.INVALID_PARAMS
    assert value_error.message == "fault.clear: a handler's ValueError"
    internal = await error_of(server, "fault.clear", kind="internal_error")
    assert internal.code == control.INTERNAL_ERROR
    assert internal.message == "fault.clear failed: RuntimeError"


async def test_lines_that_are_not_requests(server: Path) -> None:
    reader, writer = await asyncio.open_unix_connection(str(server))
    writer.write(b'not json\n{"id": 5, "params": {}}\n[1]\n{"id": 2, "method": "faults", '
                 b'"params": [1]}\n\n{"id": 6, "method": "faults", "params": null}\n')
    await writer.drain()
    replies = [json.loads(await reader.readline()) for _ in range(5)]
    assert [r.get("error", {}).get("code") for r in replies[:4]] == [
        control.PARSE_ERROR, control.INVALID_REQUEST, control.INVALID_REQUEST,
        control.INVALID_REQUEST]
    assert replies[1]["id"] == 5 and replies[3]["id"] == 2  # the id comes back when readable
    assert replies[4] == {"id": 6, "result": {"active": []}}
    writer.write(b'{"id": 7, "method": "faults", "params": {"x": "' + b"y" * 70_000 + b'"}}\n')
    await writer.drain()
    too_long = json.loads(await reader.readline())
    assert too_long["error"]["code"] == control.INVALID_REQUEST
    assert "longer than" in too_long["error"]["message"]
    writer.close()


async def test_socket_mode_stale_socket_and_a_live_one(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    first = ControlServer(path, HANDLERS)
    await first.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660  # service user and group only
        with pytest.raises(ControlSocketInUse):
            await ControlServer(path, HANDLERS).start()  # a live service holds it
    finally:
        await first.close()
    assert not path.exists()
    # A socket file left by a process that died is replaced.
    import socket as socket_module

    stale = socket_module.socket(socket_module.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    second = ControlServer(path, HANDLERS)
    await second.start()
    try:
        assert await ask(path, "faults") == {"active": []}
    finally:
        await second.close()


def test_the_socket_lock_names_its_holder(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    with ControlSocketLock(path, "chargerfw run CP1"):
        with pytest.raises(ControlSocketInUse) as busy:
            ControlSocketLock(path, "chargerfw run CP2").acquire()
    assert "chargerfw run CP1" in str(busy.value) and str(path) in str(busy.value)


def test_nothing_listening_is_unavailable(short_dir: Path) -> None:
    path = short_dir / "control.sock"
    with pytest.raises(ControlUnavailable, match="no station answers"):
        call(path, "status")
    with pytest.raises(ControlUnavailable):
        ControlClient(path).check()
    with pytest.raises(ControlUnavailable):
        ControlClient(path).request(SimPlugRequest())


def test_a_silent_service_times_out_as_unavailable(short_dir: Path) -> None:
    """Something accepts the connection but never answers."""
    import socket as socket_module

    path = short_dir / "control.sock"
    listener = socket_module.socket(socket_module.AF_UNIX)
    listener.bind(str(path))
    listener.listen(1)
    accepted: list[socket_module.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True)
    thread.start()
    try:
        client = ControlClient(path, timeout_s=0.3)
        client.check()  # it listens
        with pytest.raises(ControlUnavailable, match="no answer"):
            client.request(FaultsRequest())
    finally:
        thread.join(2)
        for sock in accepted:
            sock.close()
        listener.close()
