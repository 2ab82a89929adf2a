"""A simulated token reader (config ``type = "sim"``) driven by a test, the bench or the
station simulator: ``present("04A1B2C3")``, ``remove()``, ``unplug()``, ``replug()``.

It goes through the same :class:`TokenReader` state logic as the real backends, so repeat
suppression and lost/back reporting behave identically. Call its methods from the thread
that runs the event loop (or through ``loop.call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio

from chargerfw.drivers.readers.base import ReaderUnavailable, TokenReader, id_tag_to_uid


class SimulatedReaderUnplugged(ReaderUnavailable):
    """A card was presented to a simulated reader that is unplugged."""


class SimulatedReader(TokenReader):
    """A reader whose card and presence are set by method calls."""

    def __init__(self, name: str = "sim", *, plugged: bool = True) -> None:
        super().__init__(name)
        self._plugged = plugged

    @property
    def plugged(self) -> bool:
        return self._plugged

    def present(self, uid_hex: str) -> None:
        """Put the card with this UID (hex, byte 0 first) on the reader; a different card
        already there is removed first; the same card again is no new event."""
        uid = id_tag_to_uid(uid_hex)
        if not self._plugged:
            raise SimulatedReaderUnplugged(f"simulated reader {self.name!r} is unplugged")
        if self.running:
            self._card_present(uid)

    def remove(self) -> None:
        """Take the card off the reader (no event if none is there)."""
        self._card_absent()

    async def tap(self, uid_hex: str, hold_s: float = 0.2) -> None:
        """Present a card, hold it for ``hold_s``, take it away."""
        self.present(uid_hex)
        await asyncio.sleep(hold_s)
        self.remove()

    def unplug(self) -> None:
        """The reader disappears: READER_LOST (a card on it is forgotten)."""
        self._plugged = False
        if self.running:
            self._reader_lost("simulated reader unplugged")

    def replug(self) -> None:
        """The reader comes back: READER_BACK."""
        self._plugged = True
        if self.running:
            self._reader_back()

    async def _open(self) -> None:
        if not self._plugged:
            raise SimulatedReaderUnplugged(f"simulated reader {self.name!r} is unplugged")

    async def _run(self, opened: bool) -> None:
        if not self._plugged:
            self._reader_lost("simulated reader unplugged")
        await self._stopping.wait()
