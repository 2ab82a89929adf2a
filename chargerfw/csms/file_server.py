"""The backend's file server: chargers download published firmware releases and upload
diagnostics and logs over HTTP, each through a one-time URL made for one charger.

It listens on a port of its own (``serve --files-port``): chargers must reach it, while the
OCPI API and the admin API neither need nor expose it.

- ``GET|HEAD /firmware/<token>/<file name>``: the release the token was made for (Range
  requests answered 206, so a download may resume). The token is used up when a response
  carrying the file's last byte was sent whole.
- ``PUT /diagnostics/<token>`` (the raw body) or ``POST`` (multipart, field ``file``): the
  upload is stored under the data directory, named by charger and time, and the token used
  up. Bodies over the limit are refused with 413 and nothing is kept.

A token is refused (404, nothing served or stored) when unknown, of another kind, used up or
expired, and (403) when the request does not come from the address the token's charger last
connected to OCPP from. A download counts as complete when the server sent its last byte: a
transfer cut after that cannot resume, and the charger needs a new URL.
"""

from __future__ import annotations

import hashlib
import json
import re
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from chargerfw.csms.ocpp_server import OcppServer
from chargerfw.csms.release_signing import ReleaseSignature, SigningRefused, release_signature
from chargerfw.csms.store import AsyncStore, NotFound, Store
from chargerfw.csms.store.charger_files import (
    DIAGNOSTICS,
    FIRMWARE,
    LOG,
    TOKEN_KINDS,
    IssuedToken,
    TokenRefused,
)
from chargerfw.logs import get_logger

log = get_logger(__name__)

MANIFEST_NAME = "manifest.json"
# Releases are numbered with dot-separated integers (the firmware's release format).
_VERSION = re.compile(r"^[0-9]{1,9}(\.[0-9]{1,9}){0,5}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEFAULT_MAX_UPLOAD_BYTES = 100 * 1024 * 1024
DEFAULT_TOKEN_VALIDITY = timedelta(hours=24)
UPLOAD_PATH = "/diagnostics/"
_CHUNK = 1024 * 1024
UPLOAD_KINDS = (DIAGNOSTICS, LOG)


class ReleaseRefused(ValueError):
    """A file that cannot be published as a firmware release."""


@dataclass(frozen=True)
class FileSettings:
    data_dir: Path
    base_url: str  # how chargers reach the file server, e.g. http://192.0.2.1:9002
    token_valid_for: timedelta = DEFAULT_TOKEN_VALIDITY
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES


# --- publishing releases --------------------------------------------------------------------

def release_version(path: Path) -> str:
    """The version in a release archive's manifest; raises ReleaseRefused."""
    try:
        with tarfile.open(path, "r:") as archive:
            member = archive.getmember(MANIFEST_NAME)
            extracted = archive.extractfile(member) if member.isfile() else None
            if extracted is None:
                raise ReleaseRefused(f"{path}: {MANIFEST_NAME} is not a regular file")
            body: Any = json.loads(extracted.read())
    except KeyError:
        raise ReleaseRefused(f"{path}: the archive holds no {MANIFEST_NAME}") from None
    except (OSError, tarfile.TarError) as exc:
        raise ReleaseRefused(f"{path}: not a readable tar archive: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReleaseRefused(f"{path}: {MANIFEST_NAME} is not JSON: {exc}") from None
    version = body.get("version") if isinstance(body, dict) else None
    if not isinstance(version, str) or not _VERSION.match(version):
        raise ReleaseRefused(f"{path}: {MANIFEST_NAME} has no version of dot-separated "
                             f"integers (found {version!r})")
    return version


def publish_release(store: Store, data_dir: Path, path: Path,
                    signing_certificate: str | None = None, signature: str | None = None,
                    sign_with: bytes | None = None) -> dict[str, Any]:
    """Copy a release archive under ``data_dir`` and record it; raises ReleaseRefused or
    the store's AlreadyExists (nothing kept then). With ``signing_certificate`` (PEM) it is
    published signed, for SignedUpdateFirmware: with ``signature`` (base64, checked) or
    signed here with the key ``sign_with`` (PEM)."""
    version = release_version(path)
    if store.get_release(version) is not None:
        raise ReleaseRefused(f"release {version} is published already")
    signed: ReleaseSignature | None = None
    if signing_certificate is not None:
        try:
            signed = release_signature(path, signing_certificate, signature=signature,
                                       key_pem=sign_with)
        except SigningRefused as exc:
            raise ReleaseRefused(f"{path}: {exc}") from None
    elif signature is not None or sign_with is not None:
        raise ReleaseRefused("a signature (or a key to sign with) needs the signing "
                             "certificate")
    file_name = f"chargerfw-{version}-release.tar"
    target = data_dir / "firmware" / file_name
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source, partial.open("wb") as copy:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            copy.write(chunk)
    partial.replace(target)
    try:
        store.add_release(version, file_name, str(target.relative_to(data_dir)),
                          digest.hexdigest(), size,
                          signing_certificate=None if signed is None
                          else signed.signing_certificate,
                          signature=None if signed is None else signed.signature)
    except Exception:
        target.unlink(missing_ok=True)
        raise
    return {"version": version, "file_name": file_name, "sha256": digest.hexdigest(),
            "size": size, "signed": signed is not None}


# --- serving --------------------------------------------------------------------------------

class UploadTooLarge(Exception):
    pass


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises UploadTooLarge once the body passes ``limit`` bytes."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge
        return message

    return limited


class _TrackedFileResponse(FileResponse):
    """A FileResponse that tells whether it sent the file's last byte in a response that
    completed (a whole file, or the last range of a resumed download)."""

    completed = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reaches_end = False

        async def tracking_send(message: Message) -> None:
            nonlocal reaches_end
            if message["type"] == "http.response.start":
                headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
                if scope["method"] == "HEAD":
                    reaches_end = False
                elif message["status"] == 200:
                    reaches_end = True
                elif message["status"] == 206 and "content-range" in headers:
                    # "bytes START-END/SIZE", as FileResponse writes it for one range
                    span, _, size = headers["content-range"].removeprefix("bytes ").partition(
                        "/")
                    reaches_end = span.partition("-")[2] == str(int(size) - 1)
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.completed = reaches_end

        await super().__call__(scope, receive, tracking_send)


def _safe_part(text: str) -> str:
    """``text`` made safe as one file name part."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".") or "_"


class FileServer:
    """Issues one-time URLs and serves them (``app``)."""

    def __init__(self, db: AsyncStore, ocpp: OcppServer, settings: FileSettings) -> None:
        self._db = db
        self._ocpp = ocpp
        self.settings = settings

    # -- FileUrls --

    async def issue(self, charge_point_id: str, kind: str,
                    release_version: str | None = None) -> tuple[IssuedToken, str]:
        if kind not in TOKEN_KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        issued = await self._db(self._db.store.issue_file_token, charge_point_id, kind,
                                self.settings.token_valid_for, release_version)
        base = self.settings.base_url.rstrip("/")
        if kind == FIRMWARE:
            release = await self._db(self._db.store.get_release, release_version)
            if release is None:
                raise NotFound(f"no published release {release_version!r}")
            return issued, f"{base}/firmware/{issued.token}/{release['file_name']}"
        return issued, f"{base}{UPLOAD_PATH}{issued.token}"

    async def revoke(self, token: IssuedToken) -> None:
        await self._db(self._db.store.use_file_token, token.id)

    # -- HTTP --

    def app(self) -> Starlette:
        return Starlette(routes=[
            Route("/firmware/{token}/{name}", self._download, methods=["GET", "HEAD"]),
            Route(UPLOAD_PATH + "{token}", self._upload, methods=["PUT", "POST"])])

    async def _token(self, token: str, kinds: tuple[str, ...]) -> dict[str, Any] | None:
        try:
            return await self._db(self._db.store.usable_file_token, token, kinds)
        except TokenRefused as exc:
            log.warning("csms.file_token_refused", kinds=kinds, reason=str(exc))
            return None

    async def _download(self, request: Request) -> Response:
        row = await self._token(request.path_params["token"], (FIRMWARE,))
        if row is None or request.path_params["name"] != row["file_name"]:
            return PlainTextResponse("no such file\n", status_code=404)
        charger = row["charge_point_id"]
        if (refused := await self._foreign(request, charger)) is not None:
            return refused
        path = self.settings.data_dir / row["release_path"]
        if not path.is_file():
            log.error("csms.release_file_missing", path=str(path))
            return PlainTextResponse("no such file\n", status_code=404)
        response = _TrackedFileResponse(path, media_type="application/x-tar",
                                        filename=row["file_name"])

        async def finished() -> None:
            if response.completed and await self._db(self._db.store.use_file_token,
                                                     row["id"]):
                log.info("csms.firmware_downloaded", charge_point=charger,
                         version=row["release_version"])

        response.background = BackgroundTask(finished)
        return response

    async def _foreign(self, request: Request, charger: str) -> Response | None:
        """403 for a request that does not come from where ``charger`` last connected from."""
        address = request.client.host if request.client else None
        if address is not None and await self._ocpp.charger_address(charger) == address:
            return None
        log.warning("csms.file_url_foreign", charge_point=charger, address=address)
        return PlainTextResponse("this URL belongs to another charger\n", status_code=403)

    async def _upload(self, request: Request) -> Response:
        row = await self._token(request.path_params["token"], UPLOAD_KINDS)
        if row is None:
            return PlainTextResponse("no such upload URL\n", status_code=404)
        if (refused := await self._foreign(request, row["charge_point_id"])) is not None:
            return refused
        limit = self.settings.max_upload_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return self._too_large(row)
        limited = Request(request.scope, _limited(request.receive, limit))
        charger = row["charge_point_id"]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        folder = self.settings.data_dir / "uploads" / _safe_part(charger)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{stamp}-{row['id']}.part"
        try:
            file_name, size, sha256 = await self._receive(limited, partial)
            if file_name is not None and (
                    "/" in file_name or "\\" in file_name or file_name in (".", "..")):
                return PlainTextResponse("the file name must not have path parts\n",
                                         status_code=400)
            suffix = (f"-{file_name}" if file_name and _SAFE_NAME.match(file_name)
                      else "")
            target = folder / f"{stamp}-{row['kind']}{suffix}"
            partial.replace(target)
            try:
                stored = await self._db(self._db.store.record_received_file, row["id"],
                                        file_name, str(target.relative_to(
                                            self.settings.data_dir)), size, sha256)
            except TokenRefused:
                target.unlink(missing_ok=True)
                return PlainTextResponse("no such upload URL\n", status_code=404)
        except UploadTooLarge:
            return self._too_large(row)
        except _NoFileField:
            return PlainTextResponse("a multipart upload needs a field 'file'\n",
                                     status_code=400)
        finally:
            partial.unlink(missing_ok=True)
        log.info("csms.file_received", charge_point=charger, kind=row["kind"], size=size,
                 path=stored["path"])
        return PlainTextResponse("stored\n", status_code=201)

    def _too_large(self, row: dict[str, Any]) -> Response:
        log.warning("csms.upload_too_large", charge_point=row["charge_point_id"],
                    limit=self.settings.max_upload_bytes)
        return PlainTextResponse(f"the upload is larger than "
                                 f"{self.settings.max_upload_bytes} bytes\n", status_code=413)

    @staticmethod
    async def _receive(request: Request, partial: Path) -> tuple[str | None, int, str]:
        """Write the request's file to ``partial``: (its name, size, sha256)."""
        digest = hashlib.sha256()
        size = 0
        file_name: str | None = None
        with partial.open("wb") as out:
            if request.method == "PUT":
                async for chunk in request.stream():
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
            else:
                async with request.form(max_files=1, max_fields=10) as form:
                    upload = form.get("file")
                    if not isinstance(upload, UploadFile):
                        raise _NoFileField
                    file_name = upload.filename
                    while chunk := await upload.read(_CHUNK):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
        return file_name, size, digest.hexdigest()


class _NoFileField(Exception):
    pass


