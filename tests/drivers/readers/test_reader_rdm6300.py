"""RDM6300 reader against a device simulator over a real socat pty pair."""

from __future__ import annotations

import asyncio

import pytest
from realstack import socat_pty_pair

from chargerfw.drivers.readers.rdm6300 import Rdm6300Reader, encode_rdm6300_frame
from chargerfw.drivers.types import TagEventKind
from chargerfw.logs import capture_logs
from chargerfw.sim.rdm6300 import Rdm6300Simulator

pytestmark = pytest.mark.timeout(20)

TAG = "0A00F3C2B1"


def frame_errors(logs: list[dict]) -> list[str]:
    return [entry["error"] for entry in logs if entry["event"] == "reader.frame_error"]


def make_reader(port: str) -> Rdm6300Reader:
    return Rdm6300Reader(port, poll_interval_s=0.05, removal_timeout_s=0.3, retry_initial_s=0.05,
                         retry_max_s=0.2)


async def test_tag_presented_once_while_repeating_then_removed_by_timeout(tmp_path):
    with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b, repeat_interval_s=0.05) as device:
        reader = make_reader(pair.a)
        events = reader.events()
        await reader.start(require_reader=True)
        try:
            device.present(TAG)
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, TAG)
            # the module keeps sending the frame: no repeat while the tag stays
            with pytest.raises(TimeoutError):
                await events.next(0.6)
            device.remove()
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.REMOVED, TAG)
        finally:
            await reader.stop()


async def test_bad_frames_are_logged_never_emitted_and_reading_goes_on(tmp_path):
    good = encode_rdm6300_frame(bytes.fromhex(TAG))
    bad_checksum = good[:11] + b"00" + good[13:]
    wrong_marker = good[:13] + b"\x04"
    not_hex = good[:5] + b"ZZ" + good[7:]
    truncated = good[:8]
    with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b) as device:
        reader = make_reader(pair.a)
        events = reader.events()
        await reader.start(require_reader=True)
        try:
            with capture_logs() as logs:
                for junk in (bad_checksum, wrong_marker, not_hex, truncated):
                    device.write_raw(junk)
                    await asyncio.sleep(0.1)  # idle line: the truncated frame is dropped
                deadline = asyncio.get_running_loop().time() + 3
                while len(frame_errors(logs)) < 4:  # the truncated frame needs an idle line
                    assert asyncio.get_running_loop().time() < deadline, logs
                    await asyncio.sleep(0.02)
                with pytest.raises(TimeoutError):
                    await events.next(0.2)
            errors = frame_errors(logs)
            assert {"ChecksumError", "MalformedFrame", "TruncatedFrame"} <= set(errors)
            assert len(errors) >= 4
            device.write_raw(good)
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, TAG)
        finally:
            await reader.stop()


async def test_frame_arriving_in_pieces_is_joined(tmp_path):
    good = encode_rdm6300_frame(bytes.fromhex(TAG))
    with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b) as device:
        reader = make_reader(pair.a)
        events = reader.events()
        await reader.start(require_reader=True)
        try:
            await asyncio.to_thread(device.write_raw, good, pieces=4, gap_s=0.01)
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, TAG)
        finally:
            await reader.stop()


async def test_port_vanishing_is_reported_lost_then_back(tmp_path):
    reader = make_reader(str(tmp_path / "pty-a"))
    events = reader.events()
    try:
        with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b) as device:
            await reader.start(require_reader=True)
            device.present(TAG)
            assert (await events.next(2)).kind == TagEventKind.PRESENTED
        # socat is gone with both ptys
        assert (await events.next(3)).kind == TagEventKind.READER_LOST
        assert not reader.available
        with socat_pty_pair(tmp_path) as pair, Rdm6300Simulator(pair.b) as device:
            assert (await events.next(3)).kind == TagEventKind.READER_BACK
            device.present(TAG)  # the card is reported again after the reader is back
            event = await events.next(2)
            assert (event.kind, event.id_tag) == (TagEventKind.PRESENTED, TAG)
    finally:
        await reader.stop()


async def test_missing_port_fails_start_when_required(tmp_path):
    from chargerfw.drivers.readers import ReaderUnavailable

    reader = make_reader(str(tmp_path / "nothing"))
    with pytest.raises(ReaderUnavailable, match="cannot open"):
        await reader.start(require_reader=True)
