"""PC/SC reader while pcscd goes away and comes back (real pcscd + vpcd + virtual card)."""

from __future__ import annotations

import pytest
from reader_pcscd import exclusive_pcscd, pcscd_with_vpcd

from chargerfw.drivers.readers.pcsc import PcscReader
from chargerfw.drivers.types import TagEventKind
from chargerfw.sim.vcard import VirtualCard

pytestmark = pytest.mark.timeout(40)


async def test_daemon_restart_is_reported_lost_then_back(tmp_path):
    # The machine's pcscd stays ours between the two daemons.
    with exclusive_pcscd():
        await _restart_is_reported(tmp_path)


async def _restart_is_reported(tmp_path):
    reader = None
    try:
        with pcscd_with_vpcd(tmp_path / "first") as stack:
            reader = PcscReader(reader_name=stack.reader_name, poll_interval_s=0.1,
                                retry_initial_s=0.1, retry_max_s=0.3)
            events = reader.events()
            await reader.start(require_reader=True)
            card = VirtualCard("0A0B0C0D", port=stack.port)
            card.insert()
            assert (await events.next(5)).kind == TagEventKind.PRESENTED
            port = stack.port
        # pcscd stopped while the card was on the reader: lost, no REMOVED
        assert (await events.next(5)).kind == TagEventKind.READER_LOST
        assert not reader.available and reader.present_id_tag is None
        card.remove()
        with pcscd_with_vpcd(tmp_path / "second", port=port) as stack:
            assert (await events.next(5)).kind == TagEventKind.READER_BACK
            with VirtualCard("0A0B0C0D", port=stack.port):
                event = await events.next(5)
                assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, "0A0B0C0D")
    finally:
        if reader is not None:
            await reader.stop()
