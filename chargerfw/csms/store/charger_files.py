"""Chargers' files: what they report of firmware updates and uploads (a short history per
kind), the firmware releases published for download, the one-time URLs that let one charger
download a release or upload a file once, and the files chargers uploaded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import RowMapping

from chargerfw.csms.store.hashing import new_credentials_token, token_digest
from chargerfw.csms.store.sql import inserted_id
from chargerfw.csms.store.store_engine import StoreEngine
from chargerfw.csms.store.values import AlreadyExists, NotFound, StoreError, utcnow
from chargerfw.csms.tables import (
    charge_points,
    charger_file_statuses,
    file_tokens,
    firmware_releases,
    received_files,
)

# The kinds of status notification, and of one-time URL.
FIRMWARE = "firmware"
SIGNED_FIRMWARE = "signed_firmware"
DIAGNOSTICS = "diagnostics"
LOG = "log"
STATUS_KINDS = (FIRMWARE, SIGNED_FIRMWARE, DIAGNOSTICS, LOG)
TOKEN_KINDS = (FIRMWARE, DIAGNOSTICS, LOG)
HISTORY_LENGTH = 20  # statuses kept per charger and kind


class TokenRefused(StoreError):
    """A one-time URL that is unknown, another charger's, used up or expired."""


@dataclass(frozen=True)
class IssuedToken:
    token: str  # the secret that goes into the URL
    id: int  # also the OCPP requestId of the request that carries the URL
    expires_at: datetime


@dataclass(frozen=True)
class ChargerFiles:
    engine: StoreEngine

    # -- statuses --

    def record_file_status(self, charge_point_id: str, kind: str, status: str,
                           request_id: int | None = None) -> int:
        """Store a status notification; older ones beyond the history length go."""
        if kind not in STATUS_KINDS:
            raise ValueError(f"unknown status kind {kind!r}")
        with self.engine.begin() as c:
            row_id = inserted_id(c.execute(charger_file_statuses.insert().values(
                charge_point_id=charge_point_id, kind=kind, status=status,
                request_id=request_id, reported_at=utcnow())))
            kept = sa.select(charger_file_statuses.c.id).where(
                charger_file_statuses.c.charge_point_id == charge_point_id,
                charger_file_statuses.c.kind == kind).order_by(
                charger_file_statuses.c.id.desc()).limit(HISTORY_LENGTH)
            oldest_kept = c.execute(sa.select(sa.func.min(kept.subquery().c.id))).scalar()
            c.execute(charger_file_statuses.delete().where(
                charger_file_statuses.c.charge_point_id == charge_point_id,
                charger_file_statuses.c.kind == kind,
                charger_file_statuses.c.id < oldest_kept))
            return row_id

    def file_statuses(self, charge_point_id: str, kind: str | None = None,
                      after_id: int = 0) -> list[RowMapping]:
        """The charger's stored statuses (of one kind), oldest first, newer than ``after_id``."""
        query = sa.select(charger_file_statuses).where(
            charger_file_statuses.c.charge_point_id == charge_point_id,
            charger_file_statuses.c.id > after_id)
        if kind is not None:
            query = query.where(charger_file_statuses.c.kind == kind)
        with self.engine.connect() as c:
            return list(c.execute(query.order_by(charger_file_statuses.c.id)).mappings().all())

    def last_file_status_id(self) -> int:
        with self.engine.connect() as c:
            return int(c.execute(sa.select(sa.func.max(charger_file_statuses.c.id))).scalar()
                       or 0)

    # -- releases --

    def add_release(self, version: str, file_name: str, path: str, sha256: str,
                    size: int, signing_certificate: str | None = None,
                    signature: str | None = None) -> None:
        """Record a published release; a signed one with both its signing certificate and
        signature."""
        if (signing_certificate is None) != (signature is None):
            raise ValueError("a signed release needs its signing certificate and signature")
        with self.engine.begin() as c:
            if c.execute(sa.select(firmware_releases.c.version).where(
                    firmware_releases.c.version == version)).first() is not None:
                raise AlreadyExists(f"release {version} is published already")
            signed = ({} if signature is None else
                      {"signing_certificate": signing_certificate, "signature": signature})
            c.execute(firmware_releases.insert().values(
                version=version, file_name=file_name, path=path, sha256=sha256, size=size,
                published_at=utcnow(), **signed))

    def get_release(self, version: str) -> RowMapping | None:
        with self.engine.connect() as c:
            return c.execute(sa.select(firmware_releases).where(
                firmware_releases.c.version == version)).mappings().first()

    def list_releases(self) -> list[RowMapping]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(firmware_releases).order_by(
                firmware_releases.c.published_at, firmware_releases.c.version)
            ).mappings().all())

    # -- one-time URLs --

    def issue_file_token(self, charge_point_id: str, kind: str, valid_for: timedelta,
                         release_version: str | None = None) -> IssuedToken:
        """A new one-time URL token for the charger (a download of ``release_version``)."""
        if kind not in TOKEN_KINDS or (kind == FIRMWARE) != (release_version is not None):
            raise ValueError(f"a {kind!r} token with release {release_version!r}")
        token = new_credentials_token()
        now = utcnow()
        with self.engine.begin() as c:
            if c.execute(sa.select(charge_points.c.id).where(
                    charge_points.c.id == charge_point_id)).first() is None:
                raise NotFound(f"unknown charge point {charge_point_id!r}")
            if release_version is not None and c.execute(sa.select(
                    firmware_releases.c.version).where(
                    firmware_releases.c.version == release_version)).first() is None:
                raise NotFound(f"no published release {release_version!r}")
            token_id = inserted_id(c.execute(file_tokens.insert().values(
                token_hash=token_digest(token), charge_point_id=charge_point_id, kind=kind,
                release_version=release_version, created_at=now,
                expires_at=now + valid_for)))
        return IssuedToken(token, token_id, now + valid_for)

    def usable_file_token(self, token: str, kinds: tuple[str, ...]) -> dict[str, Any]:
        """The token, of one of ``kinds`` (with its release's file for a download) while it may be
        used; raises TokenRefused."""
        with self.engine.connect() as c:
            row = c.execute(sa.select(file_tokens, firmware_releases.c.file_name,
                                      firmware_releases.c.path.label("release_path"),
                                      firmware_releases.c.size)
                            .select_from(file_tokens.outerjoin(firmware_releases))
                            .where(file_tokens.c.token_hash == token_digest(token))
                            ).mappings().first()
        if row is None or row["kind"] not in kinds:
            raise TokenRefused("unknown token")
        if row["used_at"] is not None:
            raise TokenRefused("the token was used already")
        if row["expires_at"] <= utcnow():
            raise TokenRefused("the token expired")
        return dict(row)

    def use_file_token(self, token_id: int) -> bool:
        """Mark the token used; False when it was already."""
        with self.engine.begin() as c:
            return bool(c.execute(file_tokens.update().where(
                file_tokens.c.id == token_id, file_tokens.c.used_at.is_(None))
                .values(used_at=utcnow())).rowcount)

    # -- received files --

    def record_received_file(self, token_id: int, file_name: str | None, path: str,
                             size: int, sha256: str) -> dict[str, Any]:
        """Store an upload made with the token and use the token up, at once; raises
        TokenRefused when the token was used meanwhile."""
        now = utcnow()
        with self.engine.begin() as c:
            token = c.execute(sa.select(file_tokens).where(file_tokens.c.id == token_id)
                              ).mappings().one()
            if not c.execute(file_tokens.update().where(
                    file_tokens.c.id == token_id, file_tokens.c.used_at.is_(None))
                    .values(used_at=now)).rowcount:
                raise TokenRefused("the token was used already")
            values = dict(charge_point_id=token["charge_point_id"], kind=token["kind"],
                          token_id=token_id, file_name=file_name, path=path, size=size,
                          sha256=sha256, received_at=now)
            values["id"] = inserted_id(c.execute(received_files.insert().values(**values)))
            return values

    def received_files(self, charge_point_id: str) -> list[RowMapping]:
        with self.engine.connect() as c:
            return list(c.execute(sa.select(received_files).where(
                received_files.c.charge_point_id == charge_point_id)
                .order_by(received_files.c.id)).mappings().all())
