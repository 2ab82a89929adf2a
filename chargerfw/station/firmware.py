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
starts over from its own retrieve time); from Installing on it is ignored and logged. Every
request is answered (:class:`Answer`): Accepted, AcceptedCanceled when it replaced one,
Rejected when ignored; SignedUpdateFirmware.conf carries it, UpdateFirmware.conf does not.

A signed request (Security Whitepaper SignedUpdateFirmware: ``request_id``, ``signature``,
``signing_certificate``) runs the same machine with the whitepaper's finer statuses, each a
SignedFirmwareStatusNotification with its requestId::

    [DownloadScheduled] Downloading Downloaded SignatureVerified [InstallScheduled]
    Installing InstallRebooting Installed Idle
    ... Downloaded InvalidSignature Idle           (SignatureRefused: nothing installed)
    ... SignatureVerified InstallVerificationFailed Idle   (ReleaseRefused)

DownloadScheduled when the retrieve time is still ahead, InstallScheduled when the request
names an install time (installDateTime), which the install then waits for.

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
    # SignedFirmwareStatusNotification only (Security Whitepaper).
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALL_VERIFICATION_FAILED = "InstallVerificationFailed"
    INVALID_SIGNATURE = "InvalidSignature"
    SIGNATURE_VERIFIED = "SignatureVerified"


# What FirmwareStatusNotification (1.6 core) says for a status only the signed notification
# has: the plain status of the same step.
_CORE_STATUS = {
    FirmwareStatus.DOWNLOAD_SCHEDULED: FirmwareStatus.IDLE,
    FirmwareStatus.SIGNATURE_VERIFIED: FirmwareStatus.DOWNLOADED,
    FirmwareStatus.INSTALL_SCHEDULED: FirmwareStatus.DOWNLOADED,
    FirmwareStatus.INSTALL_REBOOTING: FirmwareStatus.INSTALLING,
    FirmwareStatus.INSTALL_VERIFICATION_FAILED: FirmwareStatus.INSTALLATION_FAILED,
    FirmwareStatus.INVALID_SIGNATURE: FirmwareStatus.INSTALLATION_FAILED,
}


def core_status(status: FirmwareStatus) -> FirmwareStatus:
    """``status`` as FirmwareStatusNotification (OCPP 1.6 core) can say it."""
    return _CORE_STATUS.get(status, status)


class UpdateAnswer(enum.StrEnum):
    """SignedUpdateFirmware.conf's status as the machine decides it (InvalidCertificate is
    decided before, from the signing certificate)."""

    ACCEPTED = "Accepted"
    ACCEPTED_CANCELED = "AcceptedCanceled"  # it replaced an update that had not installed
    REJECTED = "Rejected"  # an update is installing: it cannot be cancelled


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
    attempt (1.6 ``retries``: how many times to try), at least 1. A signed request has all of
    ``request_id``, ``signature`` (base64) and ``signing_certificate`` (PEM), and may name an
    install time (``install_at``)."""

    location: str
    retrieve_at: float  # Unix time
    tries: int = DEFAULT_TRIES
    retry_interval_s: int = DEFAULT_RETRY_INTERVAL_S
    request_id: int | None = None
    signature: str | None = None
    signing_certificate: str | None = None
    install_at: float | None = None  # Unix time; None = as soon as downloaded

    def __post_init__(self) -> None:
        if not self.location:
            raise ValueError("a firmware location is required")
        if self.tries < 1:
            raise ValueError(f"tries must be at least 1, got {self.tries}")
        if self.retry_interval_s < 0:
            raise ValueError(f"retry interval must be >= 0 s, got {self.retry_interval_s}")
        signed = (self.request_id, self.signature, self.signing_certificate)
        if any(v is not None for v in signed) and any(v is None for v in signed):
            raise ValueError("a signed firmware request needs its request id, signature and "
                             "signing certificate")
        if self.signature is not None and not self.signature.strip():
            raise ValueError("the firmware signature is empty")
        if self.signing_certificate is not None and not self.signing_certificate.strip():
            raise ValueError("the signing certificate is empty")

    @property
    def signed(self) -> bool:
        return self.request_id is not None

    def to_json(self) -> dict[str, Any]:
        return {"location": self.location, "retrieve_at": self.retrieve_at, "tries": self.tries,
                "retry_interval_s": self.retry_interval_s, "request_id": self.request_id,
                "signature": self.signature, "signing_certificate": self.signing_certificate,
                "install_at": self.install_at}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FirmwareRequest:
        install_at = data.get("install_at")
        return cls(location=str(data["location"]), retrieve_at=float(data["retrieve_at"]),
                   tries=int(data["tries"]), retry_interval_s=int(data["retry_interval_s"]),
                   request_id=data.get("request_id"), signature=data.get("signature"),
                   signing_certificate=data.get("signing_certificate"),
                   install_at=None if install_at is None else float(install_at))


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

    @property
    def signed_request_id(self) -> int | None:
        """The requestId of the signed update running (None: none, or an unsigned one)."""
        return None if self.request is None else self.request.request_id

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
    """A request arrived at ``now`` (None: the time does not matter, no DownloadScheduled)."""

    request: FirmwareRequest
    now: float | None = None


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
class SignatureRefused:
    """Downloaded, but the signature over the file (or the signing certificate, checked again
    at that time) does not hold: InvalidSignature, nothing installed."""

    reason: str


@dataclass(frozen=True, slots=True)
class Rebooting:
    """The new release is in place: the station restarts into it now."""


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
         | SignatureRefused | Rebooting | InstallFinished | Resumed)


# ---- actions ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Notify:
    """Send FirmwareStatusNotification ``status`` (through the durable outbox); with
    ``request_id``, SignedFirmwareStatusNotification."""

    status: FirmwareStatus
    request_id: int | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """The answer to the request just made (SignedUpdateFirmware.conf's status)."""

    status: UpdateAnswer


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


Action = Notify | Answer | StartDownload | CancelDownload | HoldConnectors | StartInstall | Log


# ---- the machine --------------------------------------------------------------------------


def _notify(state: FirmwareState, actions: list[Action], *statuses: FirmwareStatus
            ) -> FirmwareState:
    """Report ``statuses`` of the request in ``state``; the signed-only ones only for a
    signed request."""
    request_id = state.signed_request_id
    reported = [s for s in statuses if request_id is not None or core_status(s) is s]
    if not reported:
        return state
    actions.extend(Notify(status, request_id) for status in reported)
    return replace(state, status=reported[-1])


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
        actions.append(Answer(UpdateAnswer.REJECTED))
        actions.append(Log("firmware.update_ignored",
                           f"installing {state.version}; {ev.request.location} ignored"))
        return state
    if state.phase is not Phase.IDLE:
        assert state.request is not None
        actions.append(Answer(UpdateAnswer.ACCEPTED_CANCELED))
        actions.append(Log("firmware.update_replaced",
                           f"{state.request.location} replaced by {ev.request.location}"))
        if state.phase is Phase.DOWNLOADING:
            actions.append(CancelDownload())
        if state.holds_connectors:
            actions.append(HoldConnectors(False))
    else:
        actions.append(Answer(UpdateAnswer.ACCEPTED))
    new = FirmwareState(phase=Phase.SCHEDULED, request=ev.request, status=state.status)
    if ev.request.signed and ev.now is not None and ev.request.retrieve_at > ev.now:
        new = _notify(new, actions, FirmwareStatus.DOWNLOAD_SCHEDULED)
    return new


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
        assert state.request is not None
        if state.request.install_at is not None and ev.now < state.request.install_at:
            return state
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
            assert state.request is not None
            statuses = [FirmwareStatus.DOWNLOADED, FirmwareStatus.SIGNATURE_VERIFIED]
            if state.request.install_at is not None:
                statuses.append(FirmwareStatus.INSTALL_SCHEDULED)
            return _notify(replace(state, phase=Phase.WAITING_FOR_TRANSACTIONS,
                                   archive=archive, version=version), actions, *statuses)
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
            if state.signed_request_id is not None:
                return _end(state, actions, FirmwareStatus.DOWNLOADED,
                            FirmwareStatus.SIGNATURE_VERIFIED,
                            FirmwareStatus.INSTALL_VERIFICATION_FAILED)
            return _end(state, actions, FirmwareStatus.DOWNLOADED,
                        FirmwareStatus.INSTALLATION_FAILED)
        case SignatureRefused(reason=reason):
            if state.phase is not Phase.DOWNLOADING:
                return state
            actions.append(Log("firmware.signature_refused", reason))
            return _end(state, actions, FirmwareStatus.DOWNLOADED,
                        FirmwareStatus.INVALID_SIGNATURE)
        case Rebooting():
            if state.phase is not Phase.INSTALLING:
                return state
            return _notify(state, actions, FirmwareStatus.INSTALL_REBOOTING)
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

