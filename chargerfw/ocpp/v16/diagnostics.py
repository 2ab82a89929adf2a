"""GetDiagnostics (OCPP 1.6) and GetLog (Security Whitepaper): answered at once with the file's
name, then the file is built (by the station's :class:`~chargerfw.ocpp.station_port.LogSource`,
on a worker thread), uploaded (:mod:`chargerfw.ocpp.upload`) and the outcome reported.

The notifications of an upload (DiagnosticsStatusNotification Uploading then Uploaded or
UploadFailed; LogStatusNotification with the requestId) go through the store's outbox: they
reach the backend in order, after the answer, across a lost link or a restart. A new request
replaces one still running (GetLog answers AcceptedCanceled then). What a TriggerMessage asks
about the current state (:meth:`LogUploads.diagnostics_status`, :meth:`LogUploads.log_status`)
is sent directly by the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ocpp.exceptions import PropertyConstraintViolationError

from chargerfw.logs import get_logger
from chargerfw.ocpp.station_port import LogSource
from chargerfw.ocpp.upload import UploadError, UploadFailure, check_location, upload_with_retries
from chargerfw.store import Store

log = get_logger(__name__)

DEFAULT_RETRIES = 2  # when the backend leaves it to the charge point
DEFAULT_RETRY_INTERVAL_S = 30

DIAGNOSTICS_STATUS = "DiagnosticsStatusNotification"
LOG_STATUS = "LogStatusNotification"
DIAGNOSTICS_LOG = "DiagnosticsLog"
SECURITY_LOG = "SecurityLog"

# UploadLogStatus for each kind of failure (DiagnosticsStatus has only UploadFailed).
LOG_FAILURE_STATUS = {
    UploadFailure.FAILED: "UploadFailure",
    UploadFailure.BAD_MESSAGE: "BadMessage",
    UploadFailure.NOT_SUPPORTED: "NotSupportedOperation",
    UploadFailure.PERMISSION_DENIED: "PermissionDenied",
}

Writer = Callable[[Path, float | None, float | None], None]


@dataclass(frozen=True)
class UploadPlan:
    """One accepted request: what to build, where to send it, how often to try."""

    file_name: str
    location: str
    retries: int
    retry_interval_s: float
    since: float | None
    until: float | None


def _time(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise PropertyConstraintViolationError(
            details={"cause": f"{name} {value!r} is not an ISO 8601 date-time"}) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _count(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if value < 0:
        raise PropertyConstraintViolationError(details={"cause": f"{name} must not be negative"})
    return value


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


class LogUploads:
    """The diagnostics upload and the log upload of one station, each one at a time.

    ``notify(action, payload)`` queues a notification durably (the store's outbox) and wakes
    its pump. ``source`` is attached once the station exists; without it GetDiagnostics
    answers with no file name and GetLog is Rejected."""

    def __init__(self, store: Store, station_id: str,
                 wake_outbox: Callable[[], None]) -> None:
        self._store = store
        self._station_id = station_id
        self._wake_outbox = wake_outbox
        self.source: LogSource | None = None
        self._diagnostics: asyncio.Task[None] | None = None
        self._log: asyncio.Task[None] | None = None
        self._log_request_id: int | None = None

    # -- requests ----------------------------------------------------------------------------

    def get_diagnostics(self, location: str, retries: int | None, retry_interval: int | None,
                        start_time: str | None, stop_time: str | None) -> str | None:
        """GetDiagnostics: the fileName to answer (the upload starts after the answer), or
        None when nothing will be uploaded (no source, a location we cannot upload to).
        Malformed times or counts are a CALLERROR (PropertyConstraintViolation)."""
        plan = UploadPlan(f"{self._station_id}-diagnostics-{_stamp()}.tar.gz", location,
                          _count("retries", retries, DEFAULT_RETRIES),
                          _count("retryInterval", retry_interval, DEFAULT_RETRY_INTERVAL_S),
                          _time("startTime", start_time), _time("stopTime", stop_time))
        if self.source is None or not self._location_ok(location):
            return None
        self._cancel(self._diagnostics, "diagnostics")
        self._diagnostics = asyncio.ensure_future(self._run(
            plan, self.source.write_diagnostics,
            lambda status: self._notify(DIAGNOSTICS_STATUS, {"status": status}),
            lambda failure: "UploadFailed"))
        log.info("diagnostics.requested", file=plan.file_name, retries=plan.retries)
        return plan.file_name

    def get_log(self, log_type: str, request_id: int, parameters: dict[str, Any],
                retries: int | None, retry_interval: int | None) -> tuple[str, str | None]:
        """GetLog: (status, filename). ``parameters`` is its ``log`` (snake_case keys).
        Accepted, or AcceptedCanceled when a log upload was still running (it is stopped);
        Rejected when nothing can be uploaded."""
        location = str(parameters.get("remote_location", ""))
        suffix = "security-log.log" if log_type == SECURITY_LOG else "diagnostics-log.tar.gz"
        plan = UploadPlan(f"{self._station_id}-{suffix.replace('.', f'-{_stamp()}.', 1)}",
                          location, _count("retries", retries, DEFAULT_RETRIES),
                          _count("retryInterval", retry_interval, DEFAULT_RETRY_INTERVAL_S),
                          _time("oldestTimestamp", parameters.get("oldest_timestamp")),
                          _time("latestTimestamp", parameters.get("latest_timestamp")))
        if self.source is None or not self._location_ok(location):
            return "Rejected", None
        writer = (self.source.write_security_log if log_type == SECURITY_LOG
                  else self.source.write_diagnostics)
        canceled = self._cancel(self._log, "log")
        self._log_request_id = request_id
        self._log = asyncio.ensure_future(self._run(
            plan, writer,
            lambda status: self._notify(LOG_STATUS, {"status": status, "requestId": request_id}),
            LOG_FAILURE_STATUS.__getitem__))
        log.info("log.requested", log_type=log_type, request_id=request_id, file=plan.file_name)
        return ("AcceptedCanceled" if canceled else "Accepted"), plan.file_name

    # -- the current state, for TriggerMessage -------------------------------------------------

    def diagnostics_status(self) -> str:
        return "Uploading" if self._running(self._diagnostics) else "Idle"

    def log_status(self) -> tuple[str, int | None]:
        """(status, requestId): Uploading with the request's id, or Idle without one."""
        if self._running(self._log):
            return "Uploading", self._log_request_id
        return "Idle", None

    async def close(self) -> None:
        """Stop the uploads still running (the process is ending)."""
        for task in (self._diagnostics, self._log):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    # -- the work ------------------------------------------------------------------------------

    @staticmethod
    def _running(task: asyncio.Task[None] | None) -> bool:
        return task is not None and not task.done()

    @staticmethod
    def _location_ok(location: str) -> bool:
        try:
            check_location(location)
        except UploadError as exc:
            log.warning("upload.refused", error=str(exc))
            return False
        return True

    def _cancel(self, task: asyncio.Task[None] | None, what: str) -> bool:
        if not self._running(task):
            return False
        assert task is not None
        task.cancel()
        log.info("upload.replaced", what=what)
        return True

    def _notify(self, action: str, payload: dict[str, Any]) -> None:
        self._store.outbox_notify(action, payload)
        self._wake_outbox()

    async def _run(self, plan: UploadPlan, writer: Writer, notify: Callable[[str], None],
                   failure_status: Callable[[UploadFailure], str]) -> None:
        notify("Uploading")
        spool = self._store.path.parent
        try:
            with tempfile.TemporaryDirectory(prefix="upload-", dir=spool) as tmp:
                path = Path(tmp) / plan.file_name
                await asyncio.to_thread(writer, path, plan.since, plan.until)
                await upload_with_retries(path, plan.location, plan.file_name,
                                          retries=plan.retries,
                                          retry_interval_s=plan.retry_interval_s)
        except UploadError as exc:
            log.warning("upload.given_up", file=plan.file_name, failure=exc.failure.value,
                        error=str(exc))
            notify(failure_status(exc.failure))
            return
        except Exception:  # the file could not be built: nothing to upload
            log.exception("upload.build_failed", file=plan.file_name)
            notify(failure_status(UploadFailure.FAILED))
            return
        notify("Uploaded")
