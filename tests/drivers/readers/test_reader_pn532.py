"""PN532 reader: over UART against a device simulator on a real socat pty pair, and over I2C
against a simulated chip on an smbus2-like bus (real smbus2 ``i2c_msg`` objects, the same
frame codec and the status-byte polling)."""

from __future__ import annotations

import asyncio

import pytest
from realstack import socat_pty_pair

from chargerfw.drivers.readers import ReaderUnavailable
from chargerfw.drivers.readers.pn532 import (
    CMD_IN_LIST_PASSIVE_TARGET,
    CMD_RF_CONFIGURATION,
    CMD_SAM_CONFIGURATION,
    Pn532I2cLink,
    Pn532Reader,
    Pn532UartLink,
)
from chargerfw.drivers.types import TagEventKind
from chargerfw.logs import capture_logs
from chargerfw.sim.pn532 import Pn532Emulator, Pn532Fault, Pn532I2cBusSimulator, Pn532UartSimulator

pytestmark = pytest.mark.timeout(20)

UID4 = "04A1B2C3"
UID7 = "045A3B128F6180"


def uart_reader(port: str) -> Pn532Reader:
    return Pn532Reader(Pn532UartLink(port), poll_interval_s=0.03, reply_timeout_s=0.4,
                       retry_initial_s=0.05, retry_max_s=0.2)


def frame_errors(logs: list[dict]) -> list[str]:
    return [entry["error"] for entry in logs if entry["event"] == "reader.frame_error"]


async def wait_for_log(logs: list[dict], error: str, timeout_s: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while error not in frame_errors(logs):
        assert asyncio.get_running_loop().time() < deadline, f"no {error} logged: {logs}"
        await asyncio.sleep(0.02)


async def test_uart_configures_then_presents_once_and_removes(tmp_path):
    with socat_pty_pair(tmp_path) as pair, Pn532UartSimulator(pair.b) as device:
        reader = uart_reader(pair.a)
        events = reader.events()
        await reader.start(require_reader=True)
        try:
            assert device.chip.commands[:2] == [CMD_SAM_CONFIGURATION, CMD_RF_CONFIGURATION]
            device.chip.present(UID7)
            event = await events.next(2)
            assert (event.kind, event.id_tag, event.uid) == (
                TagEventKind.PRESENTED, UID7, bytes.fromhex(UID7))
            polls = device.chip.commands.count(CMD_IN_LIST_PASSIVE_TARGET)
            with pytest.raises(TimeoutError):
                await events.next(0.3)  # still there: polled again, not reported again
            assert device.chip.commands.count(CMD_IN_LIST_PASSIVE_TARGET) > polls + 2
            device.chip.remove()
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.REMOVED, UID7)
            assert device.chip.host_frame_errors == []  # the driver's frames were all valid
        finally:
            await reader.stop()


@pytest.mark.parametrize(("fault", "error"), [
    (Pn532Fault.BAD_DATA_CHECKSUM, "ChecksumError"),
    (Pn532Fault.BAD_LENGTH_CHECKSUM, "ChecksumError"),
    (Pn532Fault.TRUNCATED, "TruncatedFrame"),
    (Pn532Fault.ERROR_FRAME, "Pn532CommandError"),
    (Pn532Fault.NO_REPLY, "Pn532NoReply"),
])
async def test_uart_bad_reply_is_logged_and_changes_nothing(tmp_path, fault, error):
    with socat_pty_pair(tmp_path) as pair, Pn532UartSimulator(pair.b) as device:
        reader = uart_reader(pair.a)
        events = reader.events()
        await reader.start(require_reader=True)
        try:
            device.chip.present(UID4)
            assert (await events.next(2)).kind == TagEventKind.PRESENTED
            with capture_logs() as logs:
                device.chip.inject(fault)
                await wait_for_log(logs, error)
                # the card stays: a spoilt poll must neither remove it nor present it again
                with pytest.raises(TimeoutError):
                    await events.next(0.2)
            device.chip.remove()
            assert (await events.next(2)).kind == TagEventKind.REMOVED
            device.chip.inject(fault)
            device.chip.present(UID7)  # a spoilt reply never yields a tag; the next poll does
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, UID7)
        finally:
            await reader.stop()


async def test_uart_reply_in_pieces_is_joined(tmp_path):
    with socat_pty_pair(tmp_path) as pair, Pn532UartSimulator(pair.b, split_gap_s=0.01) as device:
        reader = uart_reader(pair.a)
        events = reader.events()
        await reader.start(require_reader=True)
        try:
            with capture_logs() as logs:
                device.chip.inject(*[Pn532Fault.SPLIT] * 5)
                device.chip.present(UID4)
                event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, UID4)
            assert frame_errors(logs) == []
        finally:
            await reader.stop()


async def test_uart_port_vanishing_is_lost_then_back(tmp_path):
    reader = uart_reader(str(tmp_path / "pty-a"))
    events = reader.events()
    try:
        with socat_pty_pair(tmp_path) as pair, Pn532UartSimulator(pair.b) as device:
            await reader.start(require_reader=True)
            device.chip.present(UID4)
            assert (await events.next(2)).kind == TagEventKind.PRESENTED
        assert (await events.next(3)).kind == TagEventKind.READER_LOST
        with socat_pty_pair(tmp_path) as pair, Pn532UartSimulator(pair.b) as device:
            device.chip.present(UID4)
            assert (await events.next(3)).kind == TagEventKind.READER_BACK
            # reconfigured after coming back, and the card is there again
            assert device.chip.commands[:2] == [CMD_SAM_CONFIGURATION, CMD_RF_CONFIGURATION]
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, UID4)
    finally:
        await reader.stop()


async def test_uart_silent_device_is_unavailable(tmp_path):
    with socat_pty_pair(tmp_path) as pair:  # nothing answers on the other end
        reader = uart_reader(pair.a)
        with pytest.raises(ReaderUnavailable, match="did not configure"):
            await reader.start(require_reader=True)


def i2c_reader(bus: Pn532I2cBusSimulator) -> Pn532Reader:
    link = Pn532I2cLink(1, 0x24, smbus_factory=bus, status_poll_interval_s=0.001)
    return Pn532Reader(link, poll_interval_s=0.02, reply_timeout_s=0.4, retry_initial_s=0.05,
                       retry_max_s=0.2)


async def test_i2c_polls_status_and_presents_once():
    bus = Pn532I2cBusSimulator(Pn532Emulator(), busy_reads=3)
    reader = i2c_reader(bus)
    events = reader.events()
    await reader.start(require_reader=True)
    try:
        assert bus.chip.sam_configured
        assert bus.status_reads >= 3 * 2 * 2  # busy before ACK and reply of both set-up commands
        bus.chip.present(UID4)
        event = await events.next(2)
        assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, UID4)
        with pytest.raises(TimeoutError):
            await events.next(0.2)
        bus.chip.remove()
        assert (await events.next(2)).kind == TagEventKind.REMOVED
    finally:
        await reader.stop()
    assert bus.closed


@pytest.mark.parametrize("fault", [Pn532Fault.BAD_DATA_CHECKSUM, Pn532Fault.TRUNCATED,
                                   Pn532Fault.ERROR_FRAME, Pn532Fault.SPLIT])
async def test_i2c_bad_replies_never_yield_a_tag(fault):
    bus = Pn532I2cBusSimulator(Pn532Emulator())
    reader = i2c_reader(bus)
    events = reader.events()
    await reader.start(require_reader=True)
    try:
        with capture_logs() as logs:
            bus.chip.inject(fault, fault, fault)
            bus.chip.present(UID7)
            event = await events.next(2)
        assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, UID7)
        if fault is Pn532Fault.SPLIT:  # on I2C a split reply is still one read
            assert frame_errors(logs) == []
        else:
            assert len(frame_errors(logs)) == 3
    finally:
        await reader.stop()


async def test_i2c_chip_leaving_the_bus_is_lost_then_back():
    bus = Pn532I2cBusSimulator(Pn532Emulator())
    reader = i2c_reader(bus)
    events = reader.events()
    await reader.start(require_reader=True)
    try:
        bus.present_on_bus = False
        assert (await events.next(2)).kind == TagEventKind.READER_LOST
        bus.present_on_bus = True
        assert (await events.next(2)).kind == TagEventKind.READER_BACK
        bus.chip.present(UID4)
        assert (await events.next(2)).id_tag == UID4
    finally:
        await reader.stop()
