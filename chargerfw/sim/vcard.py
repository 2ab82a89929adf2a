"""A virtual contactless card for the vsmartcard ``vpcd`` reader driver of pcscd.

vpcd listens on a TCP port (35963 by default, from its reader.conf); a virtual card (vicc)
connects to it, which is "card inserted"; closing the connection is "card removed". Every
message either way is a 2-byte big-endian length and a payload. From vpcd, a 1-byte payload is
a control code (00 power off, 01 power on, 02 reset: no answer; 04 get ATR: answer the ATR);
anything longer is a command APDU, answered with a response APDU.

This card answers the PC/SC GET DATA (UID) pseudo-APDU ``FF CA 00 00 00`` with its UID and
90 00, or with a configured error status word; other APDUs get 6D 00 (INS not supported).
"""

from __future__ import annotations

import socket
import struct
import threading

from chargerfw.drivers.readers.base import id_tag_to_uid

VPCD_DEFAULT_PORT = 35963
CTRL_POWER_OFF = 0x00
CTRL_POWER_ON = 0x01
CTRL_RESET = 0x02
CTRL_GET_ATR = 0x04
# PC/SC part 3 ATR of a contactless MIFARE Classic 1K card behind a PC/SC reader.
DEFAULT_ATR = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")
GET_UID = bytes([0xFF, 0xCA, 0x00, 0x00, 0x00])
SW_INS_NOT_SUPPORTED = bytes([0x6D, 0x00])


class VirtualCard:
    """A card that can be inserted into (connected to) and removed from a vpcd reader."""

    def __init__(self, uid_hex: str, *, host: str = "127.0.0.1", port: int = VPCD_DEFAULT_PORT,
                 atr: bytes = DEFAULT_ATR, uid_status: bytes = b"\x90\x00") -> None:
        self.uid = id_tag_to_uid(uid_hex)
        self.host = host
        self.port = port
        self.atr = atr
        self.uid_status = uid_status  # e.g. b"\x6a\x81": the card refuses GET UID
        self.apdus: list[bytes] = []  # every APDU received, for tests
        self.powered = False
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None

    @property
    def inserted(self) -> bool:
        return self._sock is not None

    def insert(self, timeout_s: float = 5.0) -> None:
        """Connect to vpcd (the reader sees a card)."""
        if self._sock is not None:
            return
        self._sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        self._sock.settimeout(None)
        self._thread = threading.Thread(target=self._serve, args=(self._sock,),
                                        name="vcard", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Disconnect (the reader sees the card leave)."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self.powered = False

    def __enter__(self) -> VirtualCard:
        self.insert()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def answer(self, message: bytes) -> bytes | None:
        """The reply to one message from vpcd (None: no reply)."""
        if len(message) == 1:
            code = message[0]
            if code == CTRL_GET_ATR:
                return self.atr
            if code in (CTRL_POWER_ON, CTRL_RESET):
                self.powered = True
            elif code == CTRL_POWER_OFF:
                self.powered = False
            return None
        self.apdus.append(message)
        if message == GET_UID:
            return (self.uid if self.uid_status == b"\x90\x00" else b"") + self.uid_status
        return SW_INS_NOT_SUPPORTED

    def _serve(self, sock: socket.socket) -> None:
        try:
            while True:
                header = _recv_exactly(sock, 2)
                if header is None:
                    return
                (length,) = struct.unpack(">H", header)
                message = _recv_exactly(sock, length)
                if message is None:
                    return
                reply = self.answer(message)
                if reply is not None:
                    sock.sendall(struct.pack(">H", len(reply)) + reply)
        except OSError:
            return  # removed while talking


def _recv_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)
