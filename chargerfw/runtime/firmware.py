"""Firmware updates at run time: carries out what the pure machine
(:mod:`chargerfw.station.firmware`) decides, and the health-checked start of a new release.

- The machine's state and the FirmwareStatusNotifications of each step are saved in one
  commit (the store's outbox delivers them, in order with the transaction messages).
- Downloads run in a thread (:func:`chargerfw.release.download.download`), then the release is
  verified against the configured public key; the event loop and the safety path never wait
  for them.
- A signed update (SignedUpdateFirmware): its signing certificate is checked against the
  installed ManufacturerRootCertificates when it arrives (refused: InvalidCertificate, nothing
  stored), and the signature over the downloaded file before the release's own checks
  (refused: InvalidSignature, the file dropped); each refusal is a security event.
- Installing: the slot is built (:func:`chargerfw.release.install_release`); just before the
  switch the store is copied (SQLite backup) and the trial record written; then the station
  stops (contactors open) and exits with the hard-reset code so systemd starts the boot
  launcher, which starts the new release.
- The new release, finding a trial for its own version: connectors held, its self-test, then
  an Accepted BootNotification before the trial's deadline: the trial ends and Installed is
  queued. Otherwise it rolls back (:func:`chargerfw.release.rollback`), writes the outcome and
  exits to be restarted as the previous release.
- The previous release, finding the outcome: :func:`restore_store_after_rollback` (before the
  store opens) puts back the store copied before the switch (the new release may have migrated
  it past what this version reads), and InstallationFailed is queued with the reason.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chargerfw import __version__
from chargerfw.config import StationConfig
from chargerfw.logs import get_logger
from chargerfw.ocpp.security_log import (
    FIRMWARE_UPDATED,
    INVALID_FIRMWARE_SIGNATURE,
    INVALID_FIRMWARE_SIGNING_CERTIFICATE,
    record_security_event,
)
from chargerfw.ocpp.station_port import FirmwareState as NotificationState
from chargerfw.release import (
    ReleaseError,
    Slot,
    install_release,
    load_public_key,
    rollback,
    verify_release,
)
from chargerfw.release.download import (
    DownloadError,
    ProgressLog,
    download,
    partial_path,
    safe_location,
)
from chargerfw.release.firmware_signature import (
    INVALID_SIGNATURE,
    FirmwareSignatureError,
    check_signing_certificate,
    load_manufacturer_roots,
    verify_signed_firmware,
)
from chargerfw.release.trial import (
    Outcome,
    Trial,
    end_trial,
    read_outcome,
    read_trial,
    write_outcome,
    write_trial,
)
from chargerfw.runtime.core import CoreRunner
from chargerfw.station import connector as cn
from chargerfw.station.firmware import (
    Action,
    Answer,
    CancelDownload,
    DownloadAttemptFailed,
    DownloadFinished,
    Event,
    FirmwareRequest,
    HoldConnectors,
    InstallFinished,
    Log,
    Notify,
    Phase,
    Rebooting,
    ReleaseRefused,
    Resumed,
    SignatureRefused,
    StartDownload,
    StartInstall,
    Tick,
    UpdateAnswer,
    UpdateRequested,
    core_status,
    step,
)
from chargerfw.station.station import EveryConnector
from chargerfw.store import Store

log = get_logger(__name__)

DOWNLOAD_NAME = "update.tar"
TICK_S = 1.0
HEALTH_POLL_S = 0.2

# A new release's self-test at start-up: the checks that failed ("name: detail"), none = pass.
SelfTest = Callable[[], Awaitable[list[str]]]


def restore_store_after_rollback(config: StationConfig) -> bool:
    """Before the store opens: after a failed trial rolled back to this release, put the store
    back as it was before the switch. True if it was restored."""
    prefix = config.firmware.prefix
    outcome, trial = read_outcome(prefix), read_trial(prefix)
    if outcome is None or trial is None or trial.store_backup is None:
        return False
    if not trial.store_backup.is_file():
        return False
    store = config.storage.path
    # The WAL of the store being replaced must not be applied to the copy.
    for suffix in ("-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    temporary = store.with_name(store.name + ".restore")
    temporary.write_bytes(trial.store_backup.read_bytes())
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, store)
    log.warning("firmware.store_restored", backup=str(trial.store_backup),
                failed_version=outcome.version)
    return True


class FirmwareUpdater:
    """The station's firmware update, for the life of one runtime."""

    def __init__(self, config: StationConfig, store: Store, core: CoreRunner, *,
                 wake_outbox: Callable[[], None], request_restart: Callable[[], None],
                 is_accepted: Callable[[], bool], self_test: SelfTest | None = None,
                 version: str = __version__, tick_s: float = TICK_S) -> None:
        self.config = config
        self.section = config.firmware
        self.store = store
        self.core = core
        self.version = version
        self._wake_outbox = wake_outbox
        self._request_restart = request_restart
        self._is_accepted = is_accepted
        self._self_test = self_test
        self._tick_s = tick_s
        self.state = store.firmware_state()
        self.progress: ProgressLog | None = None
        self.trial_deadline: float | None = None  # while this release is on trial
        self._cancel = threading.Event()
        self._jobs: set[asyncio.Task[Any]] = set()
        self._started = False

    # -- what the OCPP side asks -------------------------------------------------------------

    def request(self, request: FirmwareRequest) -> UpdateAnswer:
        """UpdateFirmware (or SignedUpdateFirmware) taken; the machine's answer (Accepted,
        AcceptedCanceled when it replaced a pending update, Rejected while one installs)."""
        log.info("firmware.update_requested", location=safe_location(request.location),
                 retrieve_at=request.retrieve_at, tries=request.tries,
                 retry_interval_s=request.retry_interval_s, request_id=request.request_id)
        actions = self.apply(UpdateRequested(request, time.time()))
        return next(a.status for a in actions if isinstance(a, Answer))

    def signed_request(self, request: FirmwareRequest) -> str:
        """SignedUpdateFirmware: its status. The signing certificate must chain to an
        installed ManufacturerRootCertificate now; otherwise InvalidCertificate (a security
        event) and nothing changes."""
        assert request.signing_certificate is not None
        roots_dir = self.config.security.manufacturer_roots_dir
        try:
            check_signing_certificate(request.signing_certificate,
                                      load_manufacturer_roots(roots_dir))
        except FirmwareSignatureError as exc:
            log.warning("firmware.signing_certificate_refused", request_id=request.request_id,
                        error=type(exc).__name__, reason=str(exc))
            record_security_event(self.store, INVALID_FIRMWARE_SIGNING_CERTIFICATE,
                                  f"{type(exc).__name__}: {exc}")
            return "InvalidCertificate"
        return self.request(request).value

    @property
    def status(self) -> str:
        """The status last reported as FirmwareStatusNotification says it (what
        TriggerMessage FirmwareStatusNotification sends)."""
        return core_status(self.state.status).value

    def notification_state(self) -> NotificationState:
        """What a triggered notification reports: the signed status with its requestId while
        a signed update runs, else the plain status."""
        request_id = self.state.signed_request_id
        if request_id is None:
            return NotificationState(self.status)
        return NotificationState(self.state.status.value, request_id)

    def snapshot(self) -> dict[str, Any]:
        """For ``chargerfw status``."""
        progress = self.progress if self.state.phase is Phase.DOWNLOADING else None
        return {"status": self.state.status.value, "phase": self.state.phase.value,
                "location": (safe_location(self.state.request.location)
                             if self.state.request else None),
                "version": self.state.version,
                "bytes": progress.received if progress else None,
                "total": progress.total if progress else None,
                "percent": progress.percent if progress else None,
                "trial_deadline": self.trial_deadline}

    # -- the machine -------------------------------------------------------------------------

    def apply(self, event: Event) -> list[Action]:
        state, actions = step(self.state, event)
        notifications = [a for a in actions if isinstance(a, Notify)]
        if state != self.state or notifications:
            self.store.firmware_save(state, notifications)
        self.state = state
        for notify in notifications:
            log.info("firmware.status", status=notify.status.value, request_id=notify.request_id)
        if notifications:
            self._wake_outbox()
        for action in actions:
            self._carry_out(action)
        return actions

    def _carry_out(self, action: object) -> None:
        match action:
            case Notify() | Answer():
                pass  # queued with the state; the answer is the caller's
            case StartDownload(request=request, attempt=attempt):
                self._cancel = threading.Event()
                self._job(self._download(request, attempt, self._cancel), "firmware-download")
            case CancelDownload():
                self._cancel.set()
                self._drop_download()
            case HoldConnectors(hold=hold):
                self.core.apply(EveryConnector(cn.UpdateHold(hold)))
            case StartInstall(archive=archive, version=version):
                self._job(self._install(Path(archive), version), "firmware-install")
            case Log(event=event, detail=detail):
                log.warning(event, detail=detail)
            case _:
                raise TypeError(f"not a firmware action: {action!r}")

    def _job(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._jobs.add(task)
        task.add_done_callback(self._job_done)

    def _job_done(self, task: asyncio.Task[Any]) -> None:
        self._jobs.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("firmware.job_failed", job=task.get_name(), error=repr(task.exception()))

    def _transactions_running(self) -> bool:
        return any(c.phase is cn.TxPhase.RUNNING for c in self.core.state.connectors)

    # -- download and verify -----------------------------------------------------------------

    @property
    def _target(self) -> Path:
        return self.config.firmware_download_dir / DOWNLOAD_NAME

    def _drop_download(self) -> None:
        for path in (self._target, partial_path(self._target)):
            path.unlink(missing_ok=True)

    async def _download(self, request: FirmwareRequest, attempt: int,
                        cancel: threading.Event) -> None:
        self.progress = progress = ProgressLog(request.location)
        log.info("firmware.download_start", location=progress.location, attempt=attempt)
        try:
            archive = await asyncio.to_thread(download, request.location, self._target,
                                              progress=progress, cancel=cancel)
        except DownloadError as exc:
            if not cancel.is_set():
                self.apply(DownloadAttemptFailed(str(exc), time.time()))
            return
        if cancel.is_set():
            return
        if request.signed:
            try:
                await asyncio.to_thread(self._verify_signature, request, archive)
            except FirmwareSignatureError as exc:
                self._signature_refused(exc)
                return
            if cancel.is_set():
                return
        try:
            version = await asyncio.to_thread(self._verify, archive)
        except ReleaseError as exc:
            self._drop_download()
            log.error("firmware.release_refused", reason=str(exc),
                      error=type(exc).__name__)
            self.apply(ReleaseRefused(f"{type(exc).__name__}: {exc}"))
            return
        self.apply(DownloadFinished(str(archive), version))

    def _verify_signature(self, request: FirmwareRequest, archive: Path) -> None:
        """The signature over the downloaded file, by the signing certificate (checked again:
        it may have expired, or the roots changed, since the request came)."""
        assert request.signing_certificate is not None and request.signature is not None
        roots = load_manufacturer_roots(self.config.security.manufacturer_roots_dir)
        signed = verify_signed_firmware(request.signing_certificate, request.signature,
                                        archive, roots)
        log.info("firmware.signature_verified", request_id=request.request_id,
                 signer=signed.signer, root=signed.root, algorithm=signed.algorithm,
                 sha256=signed.sha256)

    def _signature_refused(self, exc: FirmwareSignatureError) -> None:
        self._drop_download()
        reason = f"{type(exc).__name__}: {exc}"
        log.error("firmware.signature_refused", error=type(exc).__name__, reason=str(exc))
        record_security_event(self.store, INVALID_FIRMWARE_SIGNATURE
                              if exc.status == INVALID_SIGNATURE
                              else INVALID_FIRMWARE_SIGNING_CERTIFICATE, reason)
        self.apply(SignatureRefused(reason))

    def _verify(self, archive: Path) -> str:
        try:
            key = load_public_key(self.section.public_key.read_bytes())
        except OSError as exc:
            raise ReleaseError(f"public key {self.section.public_key}: {exc.strerror}") from None
        manifest = verify_release(archive, key, installed_version=self.version).manifest
        if manifest.version == self.version:
            raise ReleaseError(f"version {manifest.version} is the one running")
        return manifest.version

    # -- install and restart -----------------------------------------------------------------

    async def _install(self, archive: Path, version: str) -> None:
        try:
            await asyncio.to_thread(self._install_blocking, archive, version)
        except (ReleaseError, OSError) as exc:
            end_trial(self.section.prefix)
            self._drop_download()
            self.apply(InstallFinished(False, f"{type(exc).__name__}: {exc}"))
            return
        self._drop_download()
        log.info("firmware.switched", version=version, previous=self.version)
        self.apply(Rebooting())
        self._request_restart()

    def _install_blocking(self, archive: Path, version: str) -> Slot:
        key = load_public_key(self.section.public_key.read_bytes())
        prefix = self.section.prefix
        backup = self.config.storage.path.with_name(
            self.config.storage.path.name + ".before-update")

        def before_switch(slot: Slot) -> None:
            self.store.backup(backup)
            write_trial(prefix, Trial(new_version=slot.version, previous_version=self.version,
                                      deadline=time.time() + self.section.health_check_s,
                                      max_boots=self.section.boot_attempts,
                                      store_backup=backup))

        # A release carrying the chargerfw wheel alone installs it without dependencies.
        with_dependencies = len(verify_release(archive, key, installed_version=self.version)
                                .manifest.files) > 1
        return install_release(archive, prefix, key, with_dependencies=with_dependencies,
                               before_switch=before_switch)

    # -- start-up: resume, and the health check of a release on trial ------------------------

    async def run(self) -> None:
        """For the life of the runtime: resume what a restart cut, then the clock."""
        await self._start_up()
        while True:
            self.apply(Tick(time.time(), self._transactions_running()))
            await asyncio.sleep(self._tick_s)

    async def _start_up(self) -> None:
        prefix = self.section.prefix
        outcome, trial = read_outcome(prefix), read_trial(prefix)
        self.apply(Resumed(time.time()))
        if self.state.phase is not Phase.INSTALLING:
            if outcome is not None or trial is not None:
                log.warning("firmware.stale_trial_removed")
                end_trial(prefix)
            return
        if outcome is not None and outcome.version == self.version:
            # The trial failed but the switch back was cut short: finish it.
            await self._roll_back(outcome.reason)
        elif outcome is not None:
            log.error("firmware.rolled_back", failed_version=outcome.version,
                      reason=outcome.reason)
            end_trial(prefix)
            self.apply(InstallFinished(False, outcome.reason))
        elif trial is not None and trial.new_version == self.version:
            await self._health_check(trial)
        elif self.state.version == self.version:
            # The trial ended (healthy) just before a restart that left no Installed.
            self._updated()
        else:
            end_trial(prefix)
            self.apply(InstallFinished(False, f"the install of {self.state.version} was "
                                              "interrupted before the switch"))

    async def _health_check(self, trial: Trial) -> None:
        self.trial_deadline = trial.deadline
        log.info("firmware.trial_start", version=self.version, deadline=trial.deadline)
        try:
            failures = await self._self_test() if self._self_test is not None else []
        except Exception as exc:
            failures = [f"the self-test itself failed: {exc!r}"]
        if failures:
            await self._fail_trial("self-test failed: " + "; ".join(failures))
            return
        while not self._is_accepted():
            if time.time() >= trial.deadline:
                await self._fail_trial("no Accepted BootNotification before the deadline")
                return
            await asyncio.sleep(HEALTH_POLL_S)
        # The record goes first: from here on the launcher leaves this release current.
        end_trial(self.section.prefix)
        self.trial_deadline = None
        log.info("firmware.trial_passed", version=self.version)
        self._updated()

    def _updated(self) -> None:
        """The new release runs Accepted: the security event, then Installed. (A cut between
        the two repeats the event at the next start rather than losing it.)"""
        record_security_event(self.store, FIRMWARE_UPDATED,
                              f"chargerfw {self.version} installed")
        self.apply(InstallFinished(True))

    async def _fail_trial(self, reason: str) -> None:
        log.error("firmware.trial_failed", version=self.version, reason=reason)
        # The outcome first: a cut before the switch back leaves it for the launcher (or
        # this release's next start) to finish.
        write_outcome(self.section.prefix, Outcome(self.version, reason))
        await self._roll_back(reason)

    async def _roll_back(self, reason: str) -> None:
        try:
            await asyncio.to_thread(rollback, self.section.prefix)
        except ReleaseError as exc:
            log.error("firmware.rollback_failed", error=str(exc), reason=reason)
            return  # the launcher rolls back when it next starts this release
        self._request_restart()

    def close(self) -> None:
        self._cancel.set()
        for task in list(self._jobs):
            task.cancel()
