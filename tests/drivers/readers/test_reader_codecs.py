"""Pure frame codecs of the UART/I2C token readers, tested byte by byte."""

from __future__ import annotations

import pytest

from chargerfw.drivers.readers import (
    ChecksumError,
    FrameError,
    MalformedFrame,
    TruncatedFrame,
    id_tag_to_uid,
    uid_to_id_tag,
)
from chargerfw.drivers.readers.pn532 import (
    ACK_FRAME,
    ERROR_FRAME,
    NACK_FRAME,
    Pn532Ack,
    Pn532ErrorFrame,
    Pn532InfoFrame,
    Pn532Nack,
    decode_pn532_frame,
    encode_pn532_frame,
    parse_in_list_passive_target,
)
from chargerfw.drivers.readers.rdm6300 import (
    Rdm6300StreamDecoder,
    decode_rdm6300_frame,
    encode_rdm6300_frame,
)

# --- idTag -----------------------------------------------------------------------------


@pytest.mark.parametrize(("uid", "id_tag"), [
    (bytes([0x04, 0xA1, 0xB2, 0xC3]), "04A1B2C3"),
    (bytes([0x04, 0x5A, 0x3B, 0x12, 0x8F, 0x61, 0x80]), "045A3B128F6180"),
    (bytes([0x00, 0x0F]), "000F"),
])
def test_id_tag_is_uppercase_hex_byte0_first(uid, id_tag):
    assert uid_to_id_tag(uid) == id_tag
    assert id_tag_to_uid(id_tag) == uid
    assert id_tag_to_uid(id_tag.lower()) == uid


def test_id_tag_parsing_accepts_separators_and_rejects_garbage():
    assert id_tag_to_uid("04:a1:b2:c3") == bytes.fromhex("04a1b2c3")
    assert id_tag_to_uid("04 A1 B2 C3") == bytes.fromhex("04a1b2c3")
    for bad in ("", "XYZ", "04A", "00" * 11):
        with pytest.raises(ValueError):
            id_tag_to_uid(bad)


# --- RDM6300 -----------------------------------------------------------------------------

# Checksum worked by hand: 62 ^ E3 ^ 08 ^ 6C ^ ED = 08.
RDM_UID = bytes.fromhex("62E3086CED")
RDM_FRAME = b"\x02" + b"62E3086CED" + b"08" + b"\x03"


def test_rdm6300_known_frame():
    assert encode_rdm6300_frame(RDM_UID) == RDM_FRAME
    assert decode_rdm6300_frame(RDM_FRAME) == RDM_UID
    assert decode_rdm6300_frame(RDM_FRAME.lower()) == RDM_UID  # lowercase digits from clones


@pytest.mark.parametrize("uid_hex", ["0000000000", "FFFFFFFFFF", "0102030405", "AB0017C3E9"])
def test_rdm6300_round_trip(uid_hex):
    uid = bytes.fromhex(uid_hex)
    frame = encode_rdm6300_frame(uid)
    assert len(frame) == 14
    assert decode_rdm6300_frame(frame) == uid


def test_rdm6300_every_single_byte_corruption_is_rejected_or_harmless():
    rejected = 0
    for position in range(len(RDM_FRAME)):
        for value in range(256):
            if value == RDM_FRAME[position]:
                continue
            corrupted = bytearray(RDM_FRAME)
            corrupted[position] = value
            try:
                uid = decode_rdm6300_frame(bytes(corrupted))
            except FrameError:
                rejected += 1
            else:
                # only a change of hex digit case keeps the meaning
                assert uid == RDM_UID
                assert chr(value).upper() == chr(RDM_FRAME[position]).upper()
    assert rejected > 14 * 250


def test_rdm6300_error_kinds():
    with pytest.raises(ChecksumError):
        decode_rdm6300_frame(RDM_FRAME[:11] + b"09" + b"\x03")
    with pytest.raises(MalformedFrame):
        decode_rdm6300_frame(b"\x01" + RDM_FRAME[1:])
    with pytest.raises(MalformedFrame):
        decode_rdm6300_frame(RDM_FRAME[:13] + b"\x04")
    with pytest.raises(MalformedFrame):
        decode_rdm6300_frame(RDM_FRAME[:3] + b"G" + RDM_FRAME[4:])
    with pytest.raises(MalformedFrame):
        decode_rdm6300_frame(RDM_FRAME + b"\x00")
    for length in range(len(RDM_FRAME)):
        with pytest.raises(TruncatedFrame):
            decode_rdm6300_frame(RDM_FRAME[:length])
    with pytest.raises(ValueError):
        encode_rdm6300_frame(b"\x01\x02\x03\x04")


def test_rdm6300_stream_joins_a_frame_split_anywhere():
    for cut in range(1, len(RDM_FRAME)):
        decoder = Rdm6300StreamDecoder()
        assert decoder.feed(RDM_FRAME[:cut]) == []
        assert decoder.feed(RDM_FRAME[cut:]) == [RDM_UID]


def test_rdm6300_stream_byte_by_byte_and_back_to_back():
    decoder = Rdm6300StreamDecoder()
    results = []
    for byte in RDM_FRAME * 3:
        results += decoder.feed(bytes([byte]))
    assert results == [RDM_UID] * 3


def test_rdm6300_stream_reports_truncated_and_resyncs():
    other = encode_rdm6300_frame(bytes.fromhex("0102030405"))
    decoder = Rdm6300StreamDecoder()
    results = decoder.feed(RDM_FRAME[:7] + other)
    assert isinstance(results[0], TruncatedFrame)
    assert results[1:] == [bytes.fromhex("0102030405")]


def test_rdm6300_stream_reports_noise_and_bad_checksum():
    bad = RDM_FRAME[:11] + b"FF" + b"\x03"
    decoder = Rdm6300StreamDecoder()
    results = decoder.feed(b"\xff\x00noise" + bad + RDM_FRAME)
    assert isinstance(results[0], MalformedFrame)
    assert isinstance(results[1], ChecksumError)
    assert results[2:] == [RDM_UID]


def test_rdm6300_flush_drops_a_partial_frame():
    decoder = Rdm6300StreamDecoder()
    assert decoder.feed(RDM_FRAME[:9]) == []
    (error,) = decoder.flush()
    assert isinstance(error, TruncatedFrame)
    assert decoder.flush() == []
    assert decoder.feed(RDM_FRAME) == [RDM_UID]


# --- PN532 -----------------------------------------------------------------------------

# Worked by hand from UM0701 section 6.2.1: LCS = -LEN, DCS = -(TFI + data).
SAM_CONFIGURATION = bytes.fromhex("0000FF05FBD414011401" "0200")
GET_FIRMWARE_VERSION = bytes.fromhex("0000FF02FED4022A00")
FIRMWARE_REPLY = bytes.fromhex("0000FF06FAD50332010607E800")


def test_pn532_known_frames_encode():
    assert encode_pn532_frame(bytes([0x14, 0x01, 0x14, 0x01])) == SAM_CONFIGURATION
    assert encode_pn532_frame(bytes([0x02])) == GET_FIRMWARE_VERSION
    assert encode_pn532_frame(bytes([0x03, 0x32, 0x01, 0x06, 0x07]), tfi=0xD5) == FIRMWARE_REPLY


def test_pn532_known_frames_decode():
    assert decode_pn532_frame(FIRMWARE_REPLY) == (Pn532InfoFrame(0xD5, bytes.fromhex("0332010607")), 13)
    assert decode_pn532_frame(ACK_FRAME) == (Pn532Ack(), 6)
    assert decode_pn532_frame(NACK_FRAME) == (Pn532Nack(), 6)
    assert decode_pn532_frame(ERROR_FRAME) == (Pn532ErrorFrame(), 8)


def test_pn532_decode_skips_wakeup_and_preamble_and_reports_bytes_used():
    stream = b"\x55\x55" + bytes(10) + GET_FIRMWARE_VERSION + ACK_FRAME
    frame, used = decode_pn532_frame(stream)
    assert frame == Pn532InfoFrame(0xD4, b"\x02")
    assert decode_pn532_frame(stream[used:]) == (Pn532Ack(), 6)
    # ACK then reply back to back, as the chip sends them
    frame, used = decode_pn532_frame(ACK_FRAME + FIRMWARE_REPLY)
    assert frame == Pn532Ack()
    assert decode_pn532_frame((ACK_FRAME + FIRMWARE_REPLY)[used:])[0].data[0] == 0x03


@pytest.mark.parametrize("size", [0, 1, 2, 100, 253, 254, 255, 300, 1000])
def test_pn532_round_trip_normal_and_extended(size):
    data = bytes((i * 7 + 3) & 0xFF for i in range(size))
    frame = encode_pn532_frame(data, tfi=0xD5)
    if size + 1 > 255:
        assert frame[3:5] == b"\xff\xff"  # extended frame marker
    assert decode_pn532_frame(frame) == (Pn532InfoFrame(0xD5, data), len(frame))


def test_pn532_every_single_byte_corruption_is_rejected_or_harmless():
    original = decode_pn532_frame(FIRMWARE_REPLY)[0]
    for position in range(len(FIRMWARE_REPLY)):
        for value in range(256):
            if value == FIRMWARE_REPLY[position]:
                continue
            corrupted = bytearray(FIRMWARE_REPLY)
            corrupted[position] = value
            try:
                frame, _ = decode_pn532_frame(bytes(corrupted))
            except FrameError:
                continue
            # Only the optional preamble byte may change without effect.
            assert position == 0 and frame == original


@pytest.mark.parametrize("frame", [FIRMWARE_REPLY, ACK_FRAME, ERROR_FRAME, encode_pn532_frame(bytes(300))])
def test_pn532_every_truncation_asks_for_more(frame):
    for length in range(len(frame)):
        with pytest.raises(TruncatedFrame):
            decode_pn532_frame(frame[:length])


def test_pn532_error_kinds():
    bad_lcs = bytearray(FIRMWARE_REPLY)
    bad_lcs[4] = 0xFB
    with pytest.raises(ChecksumError, match="length checksum"):
        decode_pn532_frame(bytes(bad_lcs))
    bad_dcs = bytearray(FIRMWARE_REPLY)
    bad_dcs[-2] = 0xE9
    with pytest.raises(ChecksumError, match="data checksum"):
        decode_pn532_frame(bytes(bad_dcs))
    with pytest.raises(MalformedFrame, match="postamble"):
        decode_pn532_frame(FIRMWARE_REPLY[:-1] + b"\x01")
    with pytest.raises(MalformedFrame, match="identifier"):
        decode_pn532_frame(encode_pn532_frame(b"\x03", tfi=0xD6))
    extended = bytearray(encode_pn532_frame(bytes(300)))
    extended[7] ^= 1  # extended length checksum
    with pytest.raises(ChecksumError, match="extended"):
        decode_pn532_frame(bytes(extended))


def test_in_list_passive_target_reply():
    assert parse_in_list_passive_target(b"\x00") is None
    four = bytes.fromhex("01 01 0004 08 04 04A1B2C3")
    assert parse_in_list_passive_target(four) == bytes.fromhex("04A1B2C3")
    seven = bytes.fromhex("01 01 0044 00 07 045A3B128F6180")
    assert parse_in_list_passive_target(seven) == bytes.fromhex("045A3B128F6180")
    for bad in (b"", bytes.fromhex("01 01 0004 08"), bytes.fromhex("01 01 0004 08 04 04A1B2"),
                bytes.fromhex("01 01 0004 08 05 04A1B2C3D4")):
        with pytest.raises(MalformedFrame):
            parse_in_list_passive_target(bad)
