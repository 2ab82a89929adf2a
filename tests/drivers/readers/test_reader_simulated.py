"""The reader interface through the simulated reader, and the config factory."""

from __future__ import annotations

import pytest

from chargerfw.config import ReaderSection
from chargerfw.drivers.readers import CardError, ChecksumError, ReaderUnavailable, open_reader
from chargerfw.drivers.readers.base import PollingReader
from chargerfw.drivers.readers.pn532 import Pn532I2cLink, Pn532Reader, Pn532UartLink
from chargerfw.drivers.readers.rdm6300 import Rdm6300Reader
from chargerfw.drivers.readers.simulated import SimulatedReader, SimulatedReaderUnplugged
from chargerfw.drivers.types import TagEventKind

pytestmark = pytest.mark.timeout(10)


async def test_present_once_remove_and_repeat_suppression():
    reader = SimulatedReader("front")
    events = reader.events()
    async with reader:
        reader.present("04a1b2c3")
        reader.present("04A1B2C3")  # still on the reader: no repeat
        event = await events.next(1)
        assert (event.kind, event.id_tag, event.uid, event.reader) == (
            TagEventKind.PRESENTED, "04A1B2C3", bytes.fromhex("04A1B2C3"), "front")
        assert event.timestamp > 0
        assert reader.present_id_tag == "04A1B2C3"
        reader.remove()
        reader.remove()
        event = await events.next(1)
        assert (event.kind, event.id_tag) == (TagEventKind.REMOVED, "04A1B2C3")
        assert reader.present_id_tag is None
        with pytest.raises(TimeoutError):
            await events.next(0.05)


async def test_another_card_replaces_the_first():
    reader = SimulatedReader()
    events = reader.events()
    async with reader:
        reader.present("01020304")
        reader.present("0A0B0C0D0E0F10")
        kinds = [(e.kind, e.id_tag) for e in [await events.next(1) for _ in range(3)]]
    assert kinds == [(TagEventKind.PRESENTED, "01020304"), (TagEventKind.REMOVED, "01020304"),
                     (TagEventKind.PRESENTED, "0A0B0C0D0E0F10")]


async def test_unplug_and_replug_report_lost_and_back():
    reader = SimulatedReader()
    seen = []
    reader.add_listener(seen.append)
    events = reader.events()
    async with reader:
        reader.present("01020304")
        reader.unplug()
        reader.unplug()
        with pytest.raises(SimulatedReaderUnplugged):
            reader.present("01020304")
        reader.replug()
        reader.present("01020304")  # forgotten while unplugged: presented again
        got = [(await events.next(1)).kind for _ in range(4)]
    assert got == [TagEventKind.PRESENTED, TagEventKind.READER_LOST, TagEventKind.READER_BACK,
                   TagEventKind.PRESENTED]
    assert [e.kind for e in seen] == got


async def test_stop_ends_the_event_stream_and_a_bad_listener_does_not_break_it():
    reader = SimulatedReader()
    reader.add_listener(lambda event: 1 / 0)
    events = reader.events()
    await reader.start()
    reader.present("AABBCCDD")
    await reader.stop()
    assert [e.kind async for e in events] == [TagEventKind.PRESENTED]


async def test_require_reader_raises_when_missing():
    reader = SimulatedReader(plugged=False)
    with pytest.raises(ReaderUnavailable):
        await reader.start(require_reader=True)
    assert not reader.running
    events = reader.events()
    await reader.start()  # tolerated: reported as lost
    assert (await events.next(1)).kind == TagEventKind.READER_LOST
    await reader.stop()


def test_present_rejects_a_bad_uid():
    with pytest.raises(ValueError, match="not hexadecimal"):
        SimulatedReader().present("not-a-uid")


def test_factory_builds_each_kind():
    assert isinstance(open_reader(ReaderSection(type="sim")), SimulatedReader)
    assert isinstance(open_reader(ReaderSection(type="rdm6300", port="/dev/x"), simulated=True),
                      SimulatedReader)
    rdm = open_reader(ReaderSection(type="rdm6300", port="/dev/ttyS0", removal_timeout_s=1.5))
    assert isinstance(rdm, Rdm6300Reader)
    assert rdm._baudrate == 9600 and rdm._removal_timeout_s == 1.5
    uart = open_reader(ReaderSection(type="pn532-uart", port="/dev/serial0", baudrate=57600))
    assert isinstance(uart, Pn532Reader) and isinstance(uart._link, Pn532UartLink)
    assert uart._link.baudrate == 57600
    i2c = open_reader(ReaderSection(type="pn532-i2c", i2c_bus=3, i2c_address=0x25))
    assert isinstance(i2c._link, Pn532I2cLink)
    assert (i2c._link.bus_number, i2c._link.address) == (3, 0x25)
    from chargerfw.drivers.readers.pcsc import PcscReader

    pcsc = open_reader(ReaderSection(type="pcsc", reader_name="ACR122", poll_interval_s=0.1))
    assert isinstance(pcsc, PcscReader) and pcsc._reader_filter == "ACR122"


class ScriptedReader(PollingReader):
    """A polling backend whose answers come from a script, to test the shared loop."""

    def __init__(self, script):
        super().__init__("scripted", poll_interval_s=0.01, retry_initial_s=0.01, retry_max_s=0.02)
        self.script = list(script)
        self.opens = 0
        self.closes = 0

    async def _open(self):
        self.opens += 1

    async def _close(self):
        self.closes += 1

    async def _read_uid(self):
        step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        return step


async def test_polling_loop_keeps_state_on_frame_errors_and_survives_backend_failures():
    uid = bytes.fromhex("0A0B0C0D")
    reader = ScriptedReader([
        uid, uid, ChecksumError("bad"), uid,  # a bad frame neither removes nor re-presents
        CardError("6A 81"), uid,
        RuntimeError("backend bug"),  # unexpected: lost, closed, reopened, back
        uid,
    ])
    events = reader.events()
    await reader.start(require_reader=True)
    try:
        got = [(await events.next(1)).kind for _ in range(4)]
        assert got == [TagEventKind.PRESENTED, TagEventKind.READER_LOST, TagEventKind.READER_BACK,
                       TagEventKind.PRESENTED]
        assert reader.opens == 2 and reader.closes == 1
        assert (await events.next(1)).kind == TagEventKind.REMOVED  # script ran out: no card
    finally:
        await reader.stop()
