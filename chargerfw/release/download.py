"""Fetching a release from where UpdateFirmware says it is: HTTP(S) (httpx, resumed with a
Range request) or FTP (ftplib, resumed with REST).

The bytes go to ``<target>.part`` beside the target; a try that fails keeps them, and the next
try asks only for the rest. A complete file is fsynced and renamed to the target. Blocking: run
it in a thread (:func:`asyncio.to_thread`), never on the event loop or the safety path.
"""

from __future__ import annotations

import ftplib
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from chargerfw.logs import get_logger

log = get_logger(__name__)

_CHUNK = 64 * 1024
PARTIAL_SUFFIX = ".part"
DEFAULT_TIMEOUT_S = 30.0
# Progress lines in the log: at most one per this many seconds.
PROGRESS_LOG_EVERY_S = 5.0

ProgressCallback = Callable[[int, int | None], None]


class DownloadError(Exception):
    """One try failed; the message says why (the partial file is kept for the next)."""


class DownloadCancelled(DownloadError):
    """The download was cancelled (its request was replaced)."""


def partial_path(target: Path) -> Path:
    return target.with_name(target.name + PARTIAL_SUFFIX)


def safe_location(location: str) -> str:
    """``location`` without a password, for logs."""
    parts = urlsplit(location)
    if parts.password is None:
        return location
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class ProgressLog:
    """A progress callback that logs ``firmware.download_progress`` at a bounded rate and keeps
    the latest figures for ``chargerfw status``."""

    def __init__(self, location: str, every_s: float = PROGRESS_LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.location = safe_location(location)
        self.received = 0
        self.total: int | None = None
        self._every_s = every_s
        self._clock = clock
        self._logged_at: float | None = None

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return round(100.0 * self.received / self.total, 1)

    def __call__(self, received: int, total: int | None) -> None:
        self.received, self.total = received, total
        now = self._clock()
        done = total is not None and received >= total
        if done or self._logged_at is None or now - self._logged_at >= self._every_s:
            self._logged_at = now
            log.info("firmware.download_progress", location=self.location, bytes=received,
                     total=total, percent=self.percent)


def download(location: str, target: Path, *, progress: ProgressCallback | None = None,
             cancel: threading.Event | None = None,
             timeout_s: float = DEFAULT_TIMEOUT_S) -> Path:
    """Fetch ``location`` (http, https or ftp URL) to ``target``, resuming ``<target>.part``;
    ``target``. Raises :class:`DownloadError` naming the cause."""
    scheme = urlsplit(location).scheme.lower()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(target)
    report = progress or (lambda received, total: None)
    stop = cancel or threading.Event()
    try:
        if scheme in ("http", "https"):
            _http(location, partial, report, stop, timeout_s)
        elif scheme == "ftp":
            _ftp(location, partial, report, stop, timeout_s)
        else:
            raise DownloadError(f"unsupported location scheme {scheme or '(none)'!r}: "
                                "http, https or ftp")
    except DownloadError:
        raise
    except (ftplib.Error, OSError, EOFError) as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from exc
    with open(partial, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)
    return target


def _append(partial: Path, chunks: Iterable[bytes], offset: int, total: int | None,
            report: ProgressCallback, stop: threading.Event) -> None:
    """Write ``chunks`` to ``partial`` from ``offset`` on (0: start over)."""
    received = offset
    with open(partial, "r+b" if offset else "wb") as handle:
        handle.seek(offset)
        handle.truncate()
        for chunk in chunks:
            if stop.is_set():
                raise DownloadCancelled("cancelled")
            handle.write(chunk)
            received += len(chunk)
            report(received, total)
        handle.flush()
    if total is not None and received != total:
        raise DownloadError(f"connection ended after {received} of {total} bytes")


def _http(url: str, partial: Path, report: ProgressCallback, stop: threading.Event,
          timeout_s: float) -> None:
    # Imported here: the station's start-up (and its import-time budget) does not need it.
    import httpx

    try:
        _http_get(httpx, url, partial, report, stop, timeout_s)
    except httpx.HTTPError as exc:
        raise DownloadError(f"{type(exc).__name__}: {exc}") from exc


def _http_get(httpx: Any, url: str, partial: Path, report: ProgressCallback,
              stop: threading.Event, timeout_s: float) -> None:
    offset = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with httpx.Client(timeout=timeout_s, follow_redirects=True) as client:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 416 and offset:
                # The server has no bytes past ours: the partial file is not a prefix of this
                # file (it changed, or was complete and lost its rename). Start over next try.
                partial.unlink(missing_ok=True)
                raise DownloadError("HTTP 416: the partial file does not fit; starting over")
            if response.status_code not in (200, 206):
                raise DownloadError(f"HTTP {response.status_code} {response.reason_phrase}")
            if response.status_code == 206:
                expected = f"bytes {offset}-"
                content_range = response.headers.get("Content-Range", "")
                if not content_range.startswith(expected):
                    raise DownloadError(f"Content-Range {content_range!r} does not continue "
                                        f"at byte {offset}")
            else:
                offset = 0  # the server ignored the Range: the whole file comes again
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            _append(partial, response.iter_bytes(), offset, total, report, stop)


def _ftp(url: str, partial: Path, report: ProgressCallback, stop: threading.Event,
         timeout_s: float) -> None:
    parts = urlsplit(url)
    if not parts.hostname or not parts.path or parts.path == "/":
        raise DownloadError(f"not an FTP file location: {safe_location(url)}")
    offset = partial.stat().st_size if partial.exists() else 0
    ftp = ftplib.FTP(timeout=timeout_s)
    try:
        ftp.connect(parts.hostname, parts.port or 21)
        ftp.login(unquote(parts.username or "anonymous"), unquote(parts.password or ""))
        ftp.voidcmd("TYPE I")
        path = unquote(parts.path)
        total = ftp.size(path)
        if total is not None and offset > total:
            partial.unlink(missing_ok=True)
            raise DownloadError("the partial file is longer than the file; starting over")
        _append(partial, _ftp_blocks(ftp, path, offset), offset, total, report, stop)
    finally:
        try:
            ftp.quit()
        except (ftplib.Error, OSError, EOFError):
            ftp.close()


def _ftp_blocks(ftp: ftplib.FTP, path: str, offset: int) -> Iterable[bytes]:
    """The file's bytes from ``offset`` on (REST), as they arrive on the data connection."""
    with ftp.transfercmd(f"RETR {path}", rest=offset or None) as conn:
        while True:
            block = conn.recv(_CHUNK)
            if not block:
                break
            yield block
    ftp.voidresp()
