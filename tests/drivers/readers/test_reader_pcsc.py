"""PC/SC reader through the real pcscd daemon, the vpcd reader driver and a virtual card."""

from __future__ import annotations

import pytest

from chargerfw.drivers.readers import CardError, ReaderUnavailable
from chargerfw.drivers.readers.pcsc import GET_UID_APDU, PcscReader, parse_get_uid_response
from chargerfw.drivers.types import TagEventKind
from chargerfw.logs import capture_logs
from chargerfw.sim.vcard import VirtualCard

pytestmark = pytest.mark.timeout(30)

UID = "04A1B2C3D4E5F6"


def make_reader(vpcd) -> PcscReader:
    return PcscReader(reader_name=vpcd.reader_name, poll_interval_s=0.1, retry_initial_s=0.1,
                      retry_max_s=0.5)


def test_get_uid_response_parsing():
    assert parse_get_uid_response([0x04, 0xA1, 0xB2, 0xC3, 0x90, 0x00]) == bytes.fromhex("04A1B2C3")
    for bad in ([0x6A, 0x81], [0x90], [0x90, 0x00], [0x04, 0x63, 0x00]):
        with pytest.raises(CardError):
            parse_get_uid_response(bad)


async def test_insert_hold_remove(vpcd):
    reader = make_reader(vpcd)
    events = reader.events()
    await reader.start(require_reader=True)
    try:
        assert reader.pcsc_reader_name == vpcd.reader_name
        with VirtualCard(UID, port=vpcd.port) as card:
            event = await events.next(5)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, UID)
            with pytest.raises(TimeoutError):
                await events.next(1.0)  # held on the reader: no repeat
            assert card.apdus.count(bytes(GET_UID_APDU)) == 1
        event = await events.next(5)
        assert (event.kind, event.id_tag) == (TagEventKind.REMOVED, UID)
        # a second tap is a new presentation
        with VirtualCard("11223344", port=vpcd.port):
            event = await events.next(5)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, "11223344")
        assert (await events.next(5)).kind == TagEventKind.REMOVED
    finally:
        await reader.stop()


async def test_card_refusing_get_uid_gives_no_tag_and_a_logged_error(vpcd):
    reader = make_reader(vpcd)
    events = reader.events()
    await reader.start(require_reader=True)
    try:
        with capture_logs() as logs:
            with VirtualCard(UID, port=vpcd.port, uid_status=b"\x6a\x81") as card:
                with pytest.raises(TimeoutError):
                    await events.next(2.0)
                assert bytes(GET_UID_APDU) in card.apdus
            with pytest.raises(TimeoutError):
                await events.next(0.5)  # and no REMOVED for a card never presented
        errors = [e for e in logs if e["event"] == "reader.card_error"]
        assert len(errors) == 1 and "6A 81" in errors[0]["detail"]
        with VirtualCard(UID, port=vpcd.port):  # the reader still works
            assert (await events.next(5)).id_tag == UID
    finally:
        await reader.stop()


async def test_unknown_reader_name_is_unavailable(vpcd):
    reader = PcscReader(reader_name="No Such Reader")
    with pytest.raises(ReaderUnavailable, match="No Such Reader"):
        await reader.start(require_reader=True)
