"""A firmware update, pure: ``step(state, event) -> (state, actions)`` (OCPP 1.6 section 6.44
UpdateFirmware, 4.5 FirmwareStatusNotification).

::

    Idle ──UpdateRequested──► Scheduled ──Tick(now ≥ retrieve time)──► Downloading
    Downloading ──DownloadFinished──► WaitingForTransactions ──Tick(no transaction)──► Installing
    Downloading ──DownloadAttemptFailed──► RetryWait ──Tick(retry time)──► Downloading
                                     (the last try: DownloadFailed, back to Idle)
    Downloading ──ReleaseRefused──► Idle (Downloaded, InstallationFailed: nothing installed)
    Installing ──InstallFinished(ok)──► Idle (Installed) | Idle (InstallationFailed)

Every change of the reported status is a :class:`Notify` (a FirmwareStatusNotification,
queued durably with the state). While the station waits for transactions to end and while it
installs, connectors take no new session (:class:`HoldConnectors`): a free one shows
Unavailable at once, a busy one when its transaction ends.

A second UpdateFirmware while one runs (1.6 gives UpdateFirmware.conf no status to refuse
with): before Installing it replaces the pending one (its download is cancelled, the new one
starts over from its own retrieve time); from Installing on it is ignored and logged.

The state is saved after every step, so a power cut resumes from it (:class:`Resumed`): a
download starts again (resuming its partial file), a wait goes on, and an install ends with the
outcome the restart found (:class:`InstallFinished`).

No I/O, no clock: times come in the events.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Any

# A station-chosen number of download tries and their spacing when UpdateFirmware leaves
# retries/retryInterval out.
DEFAULT_TRIES = 3
DEFAULT_RETRY_INTERVAL_S = 60


class FirmwareStatus(enum.StrEnum):
    """FirmwareStatusNotification's status (OCPP 1.6)."""

    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    DOWNLOADING = "Downloading"
    IDLE = "Idle"
    INSTALLATION_FAILED = "InstallationFailed"
    INSTALLING = "Installing"
    INSTALLED = "Installed"


class Phase(enum.StrEnum):
    IDLE = "idle"
    SCHEDULED = "scheduled"  # waiting for the retrieve time
    DOWNLOADING = "downloading"
    RETRY_WAIT = "retry_wait"  # a try failed; the next one at next_attempt_at
    WAITING_FOR_TRANSACTIONS = "waiting_for_transactions"
    INSTALLING = "installing"


@dataclass(frozen=True, slots=True)
class FirmwareRequest:
    """What UpdateFirmware (or SignedUpdateFirmware) asked for. ``tries`` counts every download
    attempt (1.6 ``retries``: how many times to try), at least 1."""

    location: str
    retrieve_at: float  # Unix time
    tries: int = DEFAULT_TRIES
    retry_interval_s: int = DEFAULT_RETRY_INTERVAL_S
    request_id: int | None = None
    signature: str | None = None
    signing_certificate: str | None = None

    def __post_init__(self) -> None:
        if not self.location:
            raise ValueError("a firmware location is required")
        if self.tries < 1:
            raise ValueError(f"tries must be at least 1, got {self.tries}")
        if self.retry_interval_s < 0:
            raise ValueError(f"retry interval must be >= 0 s, got {self.retry_interval_s}")

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "retrieve_at": self.retrieve_at, "tries": self.tries,
                "retry_interval_s": self.retry_interval_s, "request_id": self.request_id,
                "signature": self.signature, "signing_certificate": self.signing_certificate}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FirmwareRequest:
        return cls(location=str(data["location"]), retrieve_at=float(data["retrieve_at"]),
                   tries=int(data["tries"]), retry_interval_s=int(data["retry_interval_s"]),
                   request_id=data.get("request_id"), signature=data.get("signature"),
                   signing_certificate=data.get("signing_certificate"))


@dataclass(frozen=True, slots=True)
class FirmwareState:
    phase: Phase = Phase.IDLE
    request: FirmwareRequest | None = None
    attempts: int = 0  # download tries started for this request
    next_attempt_at: float | None = None
    archive: str | None = None  # the downloaded, verified release
    version: str | None = None  # ... and its version
    status: FirmwareStatus = FirmwareStatus.IDLE  # what TriggerMessage reports

    @property
    def holds_connectors(self) -> bool:
        return self.phase in (Phase.WAITING_FOR_TRANSACTIONS, Phase.INSTALLING)

    def to_json(self) -> dict[str, Any]:
        return {"phase": self.phase.value,
                "request": None if self.request is None else self.request.to_json(),
                "attempts": self.attempts, "next_attempt_at": self.next_attempt_at,
                "archive": self.archive, "version": self.version, "status": self.status.value}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FirmwareState:
        request = data.get("request")
        return cls(phase=Phase(data["phase"]),
                   request=None if request is None else FirmwareRequest.from_json(request),
                   attempts=int(data.get("attempts", 0)),
                   next_attempt_at=data.get("next_attempt_at"), archive=data.get("archive"),
                   version=data.get("version"), status=FirmwareStatus(data["status"]))


# ---- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UpdateRequested:
    request: FirmwareRequest


@dataclass(frozen=True, slots=True)
class Tick:
    """The runtime's clock, with whether any transaction runs."""

    now: float
    transactions_running: bool


@dataclass(frozen=True, slots=True)
class DownloadFinished:
    """Downloaded and verified: the release at ``archive`` may be installed."""

    archive: str
    version: str


@dataclass(frozen=True, slots=True)
class DownloadAttemptFailed:
    reason: str
    now: float


@dataclass(frozen=True, slots=True)
class ReleaseRefused:
    """Downloaded, but the release may not be installed (signature, hash, version, platform)."""

    reason: str


@dataclass(frozen=True, slots=True)
class InstallFinished:
    """The install's outcome: after the restart into the new version and its health check, or
    a failure before or after the switch."""

    ok: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Resumed:
    """The station started with this state loaded from the store."""

    now: float


Event = (UpdateRequested | Tick | DownloadFinished | DownloadAttemptFailed | ReleaseRefused
         | InstallFinished | Resumed)


# ---- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notify:
    """Send FirmwareStatusNotification ``status`` (through the durable outbox)."""

    status: FirmwareStatus


@dataclass(frozen=True, slots=True)
class StartDownload:
    """Download ``request.location`` (resuming a partial file), verify it, then feed
    :class:`DownloadFinished`, :class:`DownloadAttemptFailed` or :class:`ReleaseRefused`."""

    request: FirmwareRequest
    attempt: int


@dataclass(frozen=True, slots=True)
class CancelDownload:
    """Stop a download running for a request that was replaced; drop its files."""


@dataclass(frozen=True, slots=True)
class HoldConnectors:
    """True: no new session on any connector (free ones Unavailable); False: as before."""

    hold: bool


@dataclass(frozen=True, slots=True)
class StartInstall:
    """Install ``archive`` (version ``version``) and restart into it."""

    archive: str
    version: str


@dataclass(frozen=True, slots=True)
class Log:
    event: str
    detail: str


Action = Notify | StartDownload | CancelDownload | HoldConnectors | StartInstall | Log


# ---- the machine --------------------------------------------------------------------------


def _notify(state: FirmwareState, actions: list[Action], *statuses: FirmwareStatus
            ) -> FirmwareState:
    for status in statuses:
        actions.append(Notify(status))
    return replace(state, status=statuses[-1])


def _end(state: FirmwareState, actions: list[Action], *statuses: FirmwareStatus
         ) -> FirmwareState:
    """Back to Idle after reporting ``statuses``. Idle itself is not sent: 1.6 (4.5) allows it
    only as the answer to a TriggerMessage, which reports it from now on."""
    if state.holds_connectors:
        actions.append(HoldConnectors(False))
    _notify(state, actions, *statuses)
    return FirmwareState(status=FirmwareStatus.IDLE)


def _start_download(state: FirmwareState, actions: list[Action]) -> FirmwareState:
    assert state.request is not None
    attempt = state.attempts + 1
    actions.append(StartDownload(state.request, attempt))
    state = replace(state, phase=Phase.DOWNLOADING, attempts=attempt, next_attempt_at=None)
    if state.status is not FirmwareStatus.DOWNLOADING:
        state = _notify(state, actions, FirmwareStatus.DOWNLOADING)
    return state


def _on_request(state: FirmwareState, ev: UpdateRequested, actions: list[Action]
                ) -> FirmwareState:
    if state.phase is Phase.INSTALLING:
        actions.append(Log("firmware.update_ignored",
                           f"installing {state.version}; {ev.request.location} ignored"))
        return state
    if state.phase is not Phase.IDLE:
        assert state.request is not None
        actions.append(Log("firmware.update_replaced",
                           f"{state.request.location} replaced by {ev.request.location}"))
        if state.phase is Phase.DOWNLOADING:
            actions.append(CancelDownload())
        if state.holds_connectors:
            actions.append(HoldConnectors(False))
    return FirmwareState(phase=Phase.SCHEDULED, request=ev.request, status=state.status)


def _on_tick(state: FirmwareState, ev: Tick, actions: list[Action]) -> FirmwareState:
    if state.phase is Phase.SCHEDULED:
        assert state.request is not None
        if ev.now >= state.request.retrieve_at:
            return _start_download(state, actions)
    elif state.phase is Phase.RETRY_WAIT:
        if state.next_attempt_at is None or ev.now >= state.next_attempt_at:
            return _start_download(state, actions)
    elif state.phase is Phase.WAITING_FOR_TRANSACTIONS and not ev.transactions_running:
        assert state.archive is not None and state.version is not None
        actions.append(StartInstall(state.archive, state.version))
        return _notify(replace(state, phase=Phase.INSTALLING), actions,
                       FirmwareStatus.INSTALLING)
    return state


def _transition(state: FirmwareState, ev: Event, actions: list[Action]) -> FirmwareState:
    match ev:
        case UpdateRequested():
            return _on_request(state, ev, actions)
        case Tick():
            return _on_tick(state, ev, actions)
        case DownloadFinished(archive=archive, version=version):
            if state.phase is not Phase.DOWNLOADING:
                return state  # a download that was cancelled finished anyway
            actions.append(HoldConnectors(True))
            return _notify(replace(state, phase=Phase.WAITING_FOR_TRANSACTIONS,
                                   archive=archive, version=version),
                           actions, FirmwareStatus.DOWNLOADED)
        case DownloadAttemptFailed(reason=reason, now=now):
            if state.phase is not Phase.DOWNLOADING:
                return state
            assert state.request is not None
            actions.append(Log("firmware.download_failed",
                               f"try {state.attempts} of {state.request.tries}: {reason}"))
            if state.attempts >= state.request.tries:
                return _end(state, actions, FirmwareStatus.DOWNLOAD_FAILED)
            return replace(state, phase=Phase.RETRY_WAIT,
                           next_attempt_at=now + state.request.retry_interval_s)
        case ReleaseRefused(reason=reason):
            if state.phase is not Phase.DOWNLOADING:
                return state
            actions.append(Log("firmware.release_refused", reason))
            return _end(state, actions, FirmwareStatus.DOWNLOADED,
                        FirmwareStatus.INSTALLATION_FAILED)
        case InstallFinished(ok=ok, reason=reason):
            if state.phase is not Phase.INSTALLING:
                return state
            if ok:
                return _end(state, actions, FirmwareStatus.INSTALLED)
            actions.append(Log("firmware.installation_failed", reason))
            return _end(state, actions, FirmwareStatus.INSTALLATION_FAILED)
        case Resumed():
            if state.phase is Phase.DOWNLOADING:
                return _start_download(replace(state, attempts=state.attempts - 1), actions)
            if state.holds_connectors:
                actions.append(HoldConnectors(True))
            return state
        case _:
            raise TypeError(f"not a firmware event: {ev!r}")


def step(state: FirmwareState, event: Event) -> tuple[FirmwareState, list[Action]]:
    """Apply one event to the firmware update; return the new state and the actions."""
    actions: list[Action] = []
    return _transition(state, event, actions), actions

