"""Uploading a file the backend asked for (GetDiagnostics, GetLog) to the location it named.

- ``http://`` / ``https://``: a multipart/form-data POST with the file in the field ``file``;
  a server that answers 405 Method Not Allowed or 501 gets an HTTP PUT of the file instead
  (to the location itself, or to ``location + fileName`` when the location ends with ``/``).
- ``ftp://[user[:password]@]host[:port]/directory``: a passive-mode STOR of ``fileName`` into
  the directory (anonymous without a user).

Every failure is an :class:`UploadError` whose :class:`UploadFailure` says what kind it was (a
refused login is not a network error); :func:`upload_with_retries` tries ``1 + retries``
times, ``retry_interval_s`` apart. The transfer never blocks the event loop: HTTP goes through
httpx's async client, FTP through ``ftplib`` on a worker thread.
"""

from __future__ import annotations

import asyncio
import enum
import ftplib
from pathlib import Path
from urllib.parse import unquote, urlsplit

from chargerfw.logs import get_logger

log = get_logger(__name__)

SCHEMES = ("http", "https", "ftp")
DEFAULT_TIMEOUT_S = 60.0
FTP_PORT = 21


class UploadFailure(enum.Enum):
    """What kind of failure an upload ended in (the Security Whitepaper's UploadLogStatus
    distinguishes them; OCPP 1.6's DiagnosticsStatus only knows UploadFailed)."""

    FAILED = "failed"  # network, server error, timeout
    BAD_MESSAGE = "bad_message"  # the server could not read what we sent
    NOT_SUPPORTED = "not_supported"  # the server does not take uploads that way
    PERMISSION_DENIED = "permission_denied"  # login or authorisation refused


class UploadError(Exception):
    def __init__(self, failure: UploadFailure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


class UnsupportedLocation(UploadError):
    """The location is not an http, https or ftp URL with a host."""

    def __init__(self, message: str) -> None:
        super().__init__(UploadFailure.NOT_SUPPORTED, message)


def check_location(location: str) -> None:
    """Raises :class:`UnsupportedLocation` unless ``location`` can be uploaded to."""
    try:
        parts = urlsplit(location)
        parts.port  # noqa: B018 (a port that is not a number raises here)
    except ValueError as exc:
        raise UnsupportedLocation(f"location {location!r} is not a URL: {exc}") from None
    if parts.scheme.lower() not in SCHEMES:
        raise UnsupportedLocation(f"location {location!r}: scheme {parts.scheme!r} is not one "
                                  f"of {', '.join(SCHEMES)}")
    if not parts.hostname:
        raise UnsupportedLocation(f"location {location!r} names no host")


def _http_failure(status: int) -> UploadFailure:
    if status in (401, 403, 407):
        return UploadFailure.PERMISSION_DENIED
    if status in (405, 501):
        return UploadFailure.NOT_SUPPORTED
    if status in (400, 411, 413, 415, 422):
        return UploadFailure.BAD_MESSAGE
    return UploadFailure.FAILED


def _redacted_url(location: str) -> str:
    """The location for logs and errors, without its password."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


async def _upload_http(path: Path, location: str, file_name: str, timeout_s: float) -> None:
    # Imported here: httpx loads its command line (click, rich) when it is importable, which
    # the service's start-up should not pay for.
    import httpx

    content = await asyncio.to_thread(path.read_bytes)
    async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as client:
        try:
            answer = await client.post(
                location, files={"file": (file_name, content, "application/octet-stream")})
            if answer.status_code in (405, 501):
                target = location + file_name if location.endswith("/") else location
                answer = await client.put(target, content=content,
                                          headers={"Content-Type": "application/octet-stream"})
        except httpx.HTTPError as exc:
            raise UploadError(UploadFailure.FAILED,
                              f"{type(exc).__name__}: {exc}".replace(location,
                                                                     _redacted_url(location)),
                              ) from None
    if not answer.is_success:
        raise UploadError(_http_failure(answer.status_code),
                          f"{answer.request.method} {_redacted_url(str(answer.request.url))} "
                          f"answered {answer.status_code} {answer.reason_phrase}")


def _ftp_failure(reply: str) -> UploadFailure:
    code = reply[:3]
    if code in ("530", "532", "550", "553"):
        return UploadFailure.PERMISSION_DENIED
    if code in ("202", "502", "504"):
        return UploadFailure.NOT_SUPPORTED
    if code in ("500", "501"):
        return UploadFailure.BAD_MESSAGE
    return UploadFailure.FAILED


def _upload_ftp(path: Path, location: str, file_name: str, timeout_s: float) -> None:
    parts = urlsplit(location)
    user = unquote(parts.username) if parts.username else "anonymous"
    password = unquote(parts.password) if parts.password else ""
    directory = unquote(parts.path)
    try:
        with ftplib.FTP(timeout=timeout_s) as ftp:
            ftp.connect(parts.hostname or "", parts.port or FTP_PORT)
            ftp.login(user, password)
            ftp.set_pasv(True)
            if directory.strip("/"):
                ftp.cwd(directory)
            with path.open("rb") as stream:
                ftp.storbinary(f"STOR {file_name}", stream)
    except ftplib.Error as exc:
        raise UploadError(_ftp_failure(str(exc)), f"FTP {_redacted_url(location)}: {exc}"
                          ) from None
    except (OSError, EOFError) as exc:
        raise UploadError(UploadFailure.FAILED,
                          f"FTP {_redacted_url(location)}: {type(exc).__name__}: {exc}") from None


async def upload(path: Path, location: str, file_name: str,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
    """Upload ``path`` as ``file_name`` to ``location``, once. Raises :class:`UploadError`."""
    check_location(location)
    if urlsplit(location).scheme.lower() == "ftp":
        await asyncio.to_thread(_upload_ftp, path, location, file_name, timeout_s)
    else:
        await _upload_http(path, location, file_name, timeout_s)


async def upload_with_retries(path: Path, location: str, file_name: str, *, retries: int,
                              retry_interval_s: float,
                              timeout_s: float = DEFAULT_TIMEOUT_S) -> int:
    """:func:`upload`, tried ``1 + retries`` times ``retry_interval_s`` apart; the number of
    attempts it took. Raises the last :class:`UploadError` (an unsupported location at once)."""
    attempts = 1 + max(0, retries)
    attempt = 1
    while True:
        try:
            await upload(path, location, file_name, timeout_s)
        except UnsupportedLocation:
            raise
        except UploadError as exc:
            log.warning("upload.failed", location=_redacted_url(location), attempt=attempt,
                        of=attempts, failure=exc.failure.value, error=str(exc))
            if attempt >= attempts:
                raise
            attempt += 1
            await asyncio.sleep(max(0.0, retry_interval_s))
            continue
        log.info("upload.done", location=_redacted_url(location), file=file_name,
                 attempt=attempt)
        return attempt
