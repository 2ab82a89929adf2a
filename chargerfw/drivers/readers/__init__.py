"""Token readers: PC/SC (pyscard), PN532 over UART and I2C, RDM6300 over UART, simulated.

``open_reader(section)`` builds the reader a station config's ``[reader]`` section names.
"""

from __future__ import annotations

from chargerfw.config import ReaderSection
from chargerfw.drivers.readers.base import (
    CardError,
    ChecksumError,
    FrameError,
    MalformedFrame,
    ReaderError,
    ReaderUnavailable,
    TagEventStream,
    TokenReader,
    TruncatedFrame,
    id_tag_to_uid,
    uid_to_id_tag,
)

__all__ = [
    "CardError", "ChecksumError", "FrameError", "MalformedFrame", "ReaderError",
    "ReaderUnavailable", "TagEventStream", "TokenReader", "TruncatedFrame", "id_tag_to_uid", "open_reader",
    "uid_to_id_tag",
]


def open_reader(section: ReaderSection, *, simulated: bool = False) -> TokenReader:
    """The reader described by ``section`` (not started). ``simulated`` (the station's
    ``hardware = "sim"``) gives a :class:`~chargerfw.drivers.readers.simulated.SimulatedReader`
    whatever the type. Backends are imported on demand so a missing optional library only
    matters to the reader kind that needs it."""
    poll_interval_s = section.poll_interval_s
    if simulated or section.type == "sim":
        from chargerfw.drivers.readers.simulated import SimulatedReader

        return SimulatedReader("sim")
    if section.type == "rdm6300":
        from chargerfw.drivers.readers.rdm6300 import DEFAULT_BAUDRATE, Rdm6300Reader

        assert section.port is not None  # the config validator guarantees it
        return Rdm6300Reader(section.port, baudrate=section.baudrate or DEFAULT_BAUDRATE,
                             removal_timeout_s=section.removal_timeout_s,
                             poll_interval_s=poll_interval_s)
    if section.type == "pn532-uart":
        from chargerfw.drivers.readers.pn532 import (
            DEFAULT_UART_BAUDRATE,
            Pn532Reader,
            Pn532UartLink,
        )

        assert section.port is not None
        link = Pn532UartLink(section.port, baudrate=section.baudrate or DEFAULT_UART_BAUDRATE)
        return Pn532Reader(link, poll_interval_s=poll_interval_s)
    if section.type == "pn532-i2c":
        from chargerfw.drivers.readers.pn532 import Pn532I2cLink, Pn532Reader

        return Pn532Reader(Pn532I2cLink(section.i2c_bus, section.i2c_address),
                           poll_interval_s=poll_interval_s)
    if section.type == "pcsc":
        from chargerfw.drivers.readers.pcsc import PcscReader

        return PcscReader(reader_name=section.reader_name, poll_interval_s=poll_interval_s)
    raise ValueError(f"unknown reader type {section.type!r}")
