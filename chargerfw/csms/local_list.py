"""The local authorization list a charger gets from the backend (OCPP 1.6 Local Auth List
Management), built from the token database and pushed with SendLocalList.

What a charger's list holds: every token that decides its uid (the site's own cards first, as
authorization ranks them) whose whitelist rule lets it be accepted without the eMSP at least
when the eMSP cannot be asked (ALWAYS, ALLOWED, ALLOWED_OFFLINE), with the idTagInfo the
backend would answer now: Accepted, Blocked (not valid) or Expired (a site card past its
expiry), its expiry and its parentIdTag. Stored tokens are not tied to locations, so every
charger gets the same list; a uid longer than an OCPP idTag cannot be in it.

A push is Differential (only what changed since the list the charger accepted last, removals
first) when the charger reports the version the backend recorded for it, and Full otherwise,
when asked for, or when the charger answers the first Differential message VersionMismatch.
Messages hold at most the charger's SendLocalListMaxLength entries (a longer list goes as
several, each a new version: a Full then Differentials); a list longer than its
LocalAuthListMaxLength is not sent. What the charger accepted is recorded message by message,
so a push cut short leaves the record true.

Administrators ask for pushes through the operator-command queue (``operator_commands``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from chargerfw.csms.authorization import WHITELIST_OFFLINE, stored_decision
from chargerfw.csms.ocpp_server import (
    ChargerCallError,
    ChargerNotConnected,
    OcppServer,
    id_tag_info,
)
from chargerfw.csms.store import (
    ID_TOKEN_MAX_LENGTH,
    AsyncStore,
    HeldList,
    ListEntries,
    Store,
    StoredToken,
    utcnow,
)
from chargerfw.logs import get_logger

log = get_logger(__name__)

SEND_MAX_KEY = "SendLocalListMaxLength"
LIST_MAX_KEY = "LocalAuthListMaxLength"
FULL = "Full"
DIFFERENTIAL = "Differential"
# Outcomes that leave the charger holding the list the token database gives now.
DONE = ("Accepted", "UpToDate")


def build_entries(tokens: Sequence[StoredToken], now: datetime) -> ListEntries:
    """The list for ``tokens`` (those that decide their uid and may be used offline)."""
    entries: ListEntries = {}
    for token in tokens:
        uid = token.data["uid"]
        if len(uid) <= ID_TOKEN_MAX_LENGTH:
            entries[uid] = id_tag_info(stored_decision(token, token.status(now)))
    return entries


def wanted_list(store: Store, now: datetime | None = None) -> ListEntries:
    """The list a charger should hold now, from the token database."""
    return build_entries(store.deciding_tokens(WHITELIST_OFFLINE), now or utcnow())


def full_update(wanted: ListEntries) -> list[dict[str, Any]]:
    """SendLocalList entries of a Full update: the whole list, by idTag."""
    return [{"id_tag": tag, "id_tag_info": info} for tag, info in sorted(wanted.items())]


def differential_update(held: ListEntries, wanted: ListEntries) -> list[dict[str, Any]]:
    """SendLocalList entries that turn ``held`` into ``wanted``: removals (an entry without
    idTagInfo) first, so the list never grows past what both lists need, then additions and
    changes."""
    removals: list[dict[str, Any]] = [{"id_tag": tag} for tag in sorted(held)
                                      if tag not in wanted]
    return removals + [{"id_tag": tag, "id_tag_info": info}
                       for tag, info in sorted(wanted.items()) if held.get(tag) != info]


def apply_update(held: ListEntries, entries: Sequence[dict[str, Any]]) -> ListEntries:
    """``held`` after a charger accepted the Differential ``entries``."""
    result = dict(held)
    for entry in entries:
        if "id_tag_info" in entry:
            result[entry["id_tag"]] = entry["id_tag_info"]
        else:
            result.pop(entry["id_tag"], None)
    return result


def chunked(entries: Sequence[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    """``entries`` in messages of at most ``size``; an empty update is one empty message (an
    empty Full list empties the charger's)."""
    return [list(entries[i:i + size]) for i in range(0, len(entries), size)] or [[]]


@dataclass(frozen=True)
class PushOutcome:
    """How a push ended. ``status``: the charger's SendLocalList answer (Accepted, Failed,
    NotSupported, VersionMismatch), or UpToDate (nothing to send), TooLong (the list exceeds
    the charger's LocalAuthListMaxLength), LimitsUnknown (it does not report its list
    limits), NotConnected, NoAnswer, CallError."""

    charge_point_id: str
    status: str
    detail: str
    update_type: str | None = None  # how the push began (Full, Differential)
    version: int | None = None  # the version the charger holds as far as we know
    messages: int = 0  # SendLocalList messages the charger accepted
    entries_sent: int = 0  # entries in those messages

    @property
    def ok(self) -> bool:
        return self.status in DONE

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Progress:
    update_type: str | None = None
    version: int | None = None
    held: ListEntries = field(default_factory=dict)
    messages: int = 0
    entries_sent: int = 0


class _Refused(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class LocalListPusher:
    """Pushes the token database's local authorization list to connected chargers."""

    def __init__(self, db: AsyncStore, ocpp: OcppServer) -> None:
        self._db = db
        self._ocpp = ocpp

    async def wanted(self) -> ListEntries:
        """The list a charger should hold now."""
        return await self._db(wanted_list, self._db.store)

    async def push(self, charge_point_id: str, full: bool = False) -> PushOutcome:
        """Bring the charger's list up to date (see the module's rules)."""
        held = await self._db(self._db.store.held_local_list, charge_point_id)
        progress = _Progress(version=held.version if held else None,
                             held=dict(held.entries) if held else {})
        try:
            status, detail = await self._push(charge_point_id, full, held, progress)
        except _Refused as refused:
            status, detail = refused.status, refused.detail
        except ChargerNotConnected:
            status, detail = "NotConnected", "the charger is not connected to this backend"
        except TimeoutError:
            status, detail = "NoAnswer", "the charger did not answer in time"
        except ChargerCallError as exc:
            status, detail = "CallError", f"the charger answered with an error: {exc}"
        outcome = PushOutcome(charge_point_id, status, detail, progress.update_type,
                              progress.version, progress.messages, progress.entries_sent)
        log.info("csms.local_list_push", charge_point=charge_point_id, status=status,
                 update_type=outcome.update_type, version=outcome.version,
                 messages=outcome.messages, entries=outcome.entries_sent)
        return outcome

    async def _push(self, charge_point_id: str, full: bool, held: HeldList | None,
                    progress: _Progress) -> tuple[str, str]:
        send_max, list_max = await self._limits(charge_point_id)
        wanted = await self.wanted()
        if len(wanted) > list_max:
            raise _Refused("TooLong", f"the list has {len(wanted)} entries; the charger holds "
                           f"at most {list_max} ({LIST_MAX_KEY}); nothing was sent")
        charger_version = None
        why_full = "asked for"
        if not full:
            charger_version = await self._ocpp.get_local_list_version(charge_point_id)
            if held is None:
                full, why_full = True, "no list recorded for the charger"
            elif charger_version != held.version:
                full, why_full = True, (f"the charger holds version {charger_version}, the "
                                        f"backend recorded {held.version}")
        if held is not None and not full:
            entries = differential_update(held.entries, wanted)
            if not entries:
                return "UpToDate", f"the charger holds the current list (version {held.version})"
            status = await self._send(charge_point_id, DIFFERENTIAL, entries, send_max,
                                      progress)
            if status != "VersionMismatch" or progress.messages > 0:
                return status, self._detail(status, progress)
            why_full = "the charger answered the Differential update VersionMismatch"
        log.info("csms.local_list_full", charge_point=charge_point_id, reason=why_full)
        status = await self._send(charge_point_id, FULL, full_update(wanted), send_max, progress,
                                  at_least=charger_version)
        return status, self._detail(status, progress, why_full)

    async def _send(self, charge_point_id: str, update_type: str,
                    entries: list[dict[str, Any]], send_max: int, progress: _Progress,
                    at_least: int | None = None) -> str:
        """Send ``entries`` as ``update_type`` in messages of at most ``send_max``; records
        each accepted message; returns Accepted or the first other answer."""
        progress.update_type = progress.update_type or update_type
        version = max(progress.version or 0, at_least or 0)
        for index, chunk in enumerate(chunked(entries, send_max)):
            kind = update_type if index == 0 else DIFFERENTIAL
            version += 1
            status = await self._ocpp.send_local_list(charge_point_id, version, kind, chunk)
            if status != "Accepted":
                return status
            progress.held = apply_update({} if kind == FULL else progress.held, chunk)
            progress.version = version
            progress.messages += 1
            progress.entries_sent += len(chunk)
            await self._db(self._db.store.record_local_list, charge_point_id, version,
                           progress.held)
        return "Accepted"

    @staticmethod
    def _detail(status: str, progress: _Progress, why_full: str | None = None) -> str:
        reason = f" (Full: {why_full})" if why_full else ""
        if status == "Accepted":
            return (f"the charger holds version {progress.version}: {len(progress.held)} "
                    f"entries{reason}")
        known = ("" if progress.version is None
                 else f"; it holds version {progress.version} as far as the backend knows")
        explained = {"Failed": "the charger could not apply the update",
                     "NotSupported": "the charger does not support a local list (or has "
                                     "LocalAuthListEnabled false)",
                     "VersionMismatch": "the charger refused the list version"}
        return (f"{explained.get(status, 'the charger answered ' + status)} after "
                f"{progress.messages} accepted message(s){reason}{known}")

    async def _limits(self, charge_point_id: str) -> tuple[int, int]:
        """(SendLocalListMaxLength, LocalAuthListMaxLength) as the charger reports them."""
        keys, _ = await self._ocpp.get_configuration(charge_point_id,
                                                     [SEND_MAX_KEY, LIST_MAX_KEY])
        values = {entry.get("key"): entry.get("value") for entry in keys}
        limits = []
        for key in (SEND_MAX_KEY, LIST_MAX_KEY):
            value = values.get(key)
            if value is None:
                raise _Refused("LimitsUnknown", f"the charger does not report {key}: it does "
                               "not support local list management; nothing was sent")
            try:
                limit = int(str(value).strip())
            except ValueError:
                limit = 0
            if limit < 1:
                raise _Refused("LimitsUnknown", f"the charger reports {key} = {value!r}, not a "
                               "positive whole number; nothing was sent")
            limits.append(limit)
        return limits[0], limits[1]
