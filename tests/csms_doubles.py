"""Test doubles for the CSMS tests: an OCPP 1.6 charger and an OCPI eMSP, both on loopback.

Also the database parametrisation (SQLite file and a real PostgreSQL from tests/pg.py).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import os
import shutil
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action
from pg import PostgresServer, fresh_database, template_database
from websockets.asyncio.client import ClientConnection, connect

from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.server import CsmsSettings, RunningCsms, running_csms
from chargerfw.csms.store import AuthDecision, CpoIdentity, Party, Store
from chargerfw.csms.urlpolicy import LOOPBACK_NETWORKS


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- databases ------------------------------------------------------------------------------

@functools.cache
def schema_key() -> str:
    """Names a migrated template: the alembic head plus a digest of the migration sources, so a
    template made before a migration was added or edited is never copied for a test."""
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from chargerfw.csms.db import MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", MIGRATIONS)
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    assert head is not None
    digest = hashlib.sha256()
    for source in sorted(Path(script.dir).rglob("*.py")):
        digest.update(source.relative_to(script.dir).as_posix().encode() + b"\0")
        digest.update(source.read_bytes())
    return f"{head}_{digest.hexdigest()[:12]}".lower()


def _migrate(db: str) -> None:
    engine = create_db_engine(db)
    try:
        upgrade_database(engine)
    finally:
        engine.dispose()


def migrated_sqlite(path: Path, template_dir: Path) -> str:
    """A SQLite database at ``path`` already at the newest schema: a copy of a template migrated
    once per directory and schema (the CSMS's own migration at start then applies nothing)."""
    template = template_dir / f"csms-migrated-{schema_key()}.sqlite3"
    if not template.exists():
        # Built aside and renamed into place: a half-built template is never copied.
        building = template.with_name(f"{template.name}.building-{os.getpid()}")
        _migrate(str(building))
        os.replace(building, template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, path)
    return str(path)


def migrated_postgres(pg: PostgresServer) -> str:
    """A new PostgreSQL database already at the newest schema, copied from a template migrated
    once per server and schema."""
    # PostgreSQL cuts names at 63 bytes: the key goes in as a digest.
    key = hashlib.sha256(schema_key().encode()).hexdigest()[:16]
    template = template_database(pg, f"csms_migrated_{key}", _migrate)
    return fresh_database(pg, template=template)


def db_url_for(kind: str, tmp_path: Path, pg: PostgresServer) -> str:
    """An empty database for one test (the migrations run on it from the start)."""
    if kind == "sqlite":
        return str(tmp_path / "csms.sqlite3")
    return fresh_database(pg)


def migrated_db_url_for(kind: str, tmp_path: Path, pg: PostgresServer, template_dir: Path
                        ) -> str:
    """A database for one test at the newest schema (SQLite templates kept in ``template_dir``)."""
    if kind == "sqlite":
        return migrated_sqlite(tmp_path / "csms.sqlite3", template_dir)
    return migrated_postgres(pg)


def settings_for(db: str, **overrides: Any) -> CsmsSettings:
    values: dict[str, Any] = dict(db=db, ocpp_port=0, api_port=0,
                                  cpo=CpoIdentity("NL", "CFW", "Test CPO", "EUR"),
                                  push_retry_base_s=0.05, push_poll_s=0.05,
                                  cdr_poll_s=0.05,
                                  command_timeout_s=3.0, ocpp_response_timeout_s=3.0,
                                  reservation_sweep_s=0.1,
                                  # The partner doubles listen on loopback.
                                  outbound_allowed_networks=LOOPBACK_NETWORKS,
                                  files_port=0)
    values.update(overrides)
    return CsmsSettings(**values)


# --- charger ----------------------------------------------------------------------------------

CS_ROOT = "CentralSystemRootCertificate"
MANUFACTURER_ROOT = "ManufacturerRootCertificate"


def hash_data_of(pem: str) -> dict[str, str]:
    """A self-signed root's CertificateHashData (SHA-256, snake_case) as a charger reports
    it: OCSP's CertID with the root as its own issuer."""
    cert = x509.load_pem_x509_certificate(pem.encode())
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, cert, hashes.SHA256()).build()
    return {"hash_algorithm": "SHA256", "issuer_name_hash": request.issuer_name_hash.hex(),
            "issuer_key_hash": request.issuer_key_hash.hex(),
            "serial_number": format(cert.serial_number, "x")}


@dataclass
class ChargerSecurity:
    """What a charger double keeps of the Security Whitepaper across its connections: its
    security profile and password, CpoName, installed roots, the key of its last CSR and the
    certificate chain it accepted. ``reconnect`` is set when a change takes effect by
    reconnecting (SecurityProfile raised, AuthorizationKey over TLS)."""

    profile: int = 1
    password: str | None = None
    cpo_name: str | None = None
    roots: dict[str, list[str]] = field(default_factory=lambda: {CS_ROOT: [],
                                                                 MANUFACTURER_ROOT: []})
    pending_key: ec.EllipticCurvePrivateKey | None = None
    key: ec.EllipticCurvePrivateKey | None = None
    chain: str | None = None
    csrs: list[str] = field(default_factory=list)
    sign_answers: list[str] = field(default_factory=list)  # the backend's SignCertificate answers
    previous: tuple[int, str | None] | None = None  # (profile, password) to fall back to
    reconnect: asyncio.Event = field(default_factory=asyncio.Event)

    def csr(self, charge_point_id: str, common_name: str | None = None,
            organization: str | None = None) -> str:
        """A new key (kept pending) and its CSR (CN = the charge point id, O = CpoName
        unless told otherwise)."""
        self.pending_key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name or charge_point_id)]
        if organization or self.cpo_name:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                                    organization or self.cpo_name or ""))
        request = (x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
                   .sign(self.pending_key, hashes.SHA256()))
        return request.public_bytes(serialization.Encoding.PEM).decode()


class SimCharger(OcppChargePoint):
    """An OCPP 1.6 charger double: sends what a test asks, answers the CSMS's requests with
    the statuses in ``answers`` and records them in ``received``."""

    def __init__(self, charge_point_id: str, connection: ClientConnection) -> None:
        super().__init__(charge_point_id, connection, response_timeout=5)
        self.received: list[tuple[str, dict[str, Any]]] = []
        # The status each request is answered with, or a function of the request's payload.
        self.answers: dict[str, str | Callable[[dict[str, Any]], str]] = {
            "RemoteStartTransaction": "Accepted", "RemoteStopTransaction": "Accepted",
            "ReserveNow": "Accepted", "CancelReservation": "Accepted",
            "UnlockConnector": "Unlocked", "ChangeAvailability": "Accepted",
            "ChangeConfiguration": "Accepted", "Reset": "Accepted",
            "TriggerMessage": "Accepted", "SendLocalList": "Accepted", "ClearCache": "Accepted",
            "SetChargingProfile": "Accepted", "ClearChargingProfile": "Accepted",
            "GetCompositeSchedule": "Accepted", "GetLog": "Accepted"}
        # Charging profiles it accepted: (connector, purpose) -> the latest csChargingProfiles
        # (snake_case); ``limit(connector)`` is what it applies (simple composite: its
        # TxProfile, else the TxDefaultProfile of the connector or of connector 0).
        self.profiles: dict[tuple[int, str], dict[str, Any]] = {}
        # Every SetChargingProfile as (monotonic time, charge point, connector, limit,
        # answer); tests share one list between chargers to see the order across them.
        self.journal: list[tuple[float, str, int, float, str]] = []
        self.silent: set[str] = set()  # actions left unanswered (to provoke timeouts)
        # Actions whose idTag the charger authorizes with the CSMS before it accepts them
        # (as some chargers do): answered Rejected unless the CSMS says Accepted.
        self.authorize_first: set[str] = set()
        self.authorized: list[tuple[str, dict[str, Any]]] = []  # (idTag, idTagInfo)
        # Its SupportedFeatureProfiles configuration key (None: it does not know the key).
        self.feature_profiles: str | None = None
        self.config_keys: dict[str, str] = {}  # further keys GetConfiguration reports
        self.local_list_version = 0  # what GetLocalListVersion answers
        self.events: asyncio.Queue[str] = asyncio.Queue()
        self.frames: list[str] = []  # every frame the CSMS sent, as it came over the wire
        self._handlers: set[asyncio.Task[None]] = set()
        # Files: UpdateFirmware downloads its location when ``fetch_firmware`` (stopping after
        # ``cut_download_at`` bytes once, then resuming with Range) into ``downloaded``;
        # GetDiagnostics / GetLog upload ``upload_body`` (by PUT, or POST multipart) when set.
        # Each sends the status notifications a charger would.
        self.fetch_firmware = False
        self.cut_download_at: int | None = None
        self.downloaded = b""
        self.upload_body: bytes | None = None
        self.upload_method = "PUT"
        self.upload_name = "diagnostics.tar"
        self.http_statuses: list[int] = []  # of its downloads' and uploads' requests
        self.file_work_done = asyncio.Event()
        # The security extension's state; a station-like charger shares one across
        # connections (see SimStation).
        self.security = ChargerSecurity()
        self.answers.update({"ExtendedTriggerMessage": "Accepted", "InstallCertificate":
                             "Accepted", "CertificateSigned": "Accepted"})
        self.station_like = False  # SecurityProfile and AuthorizationKey act as on a station

    async def start(self) -> None:
        """Handle the CSMS's requests; one that authorizes first is handled on its own task
        (its Authorize answer arrives on this same connection)."""
        while True:
            message = await self._connection.recv()
            self.frames.append(message)
            parsed = json.loads(message)
            if parsed[0] == 2 and parsed[2] in self.authorize_first:
                task = asyncio.create_task(self.route_message(message))
                self._handlers.add(task)
                task.add_done_callback(self._handlers.discard)
            else:
                await self.route_message(message)

    async def _answer(self, action: str, payload: dict[str, Any]) -> str:
        self.received.append((action, payload))
        self.events.put_nowait(action)
        if action in self.silent:
            await asyncio.sleep(3600)
        if action in self.authorize_first:
            result = await self.call(call.Authorize(id_tag=payload["id_tag"]))
            self.authorized.append((payload["id_tag"], result.id_tag_info))
            if result.id_tag_info["status"] != "Accepted":
                return "Rejected"
        answer = self.answers[action]
        return answer(payload) if callable(answer) else answer

    @on(Action.remote_start_transaction)
    async def on_remote_start(self, **kw: Any) -> call_result.RemoteStartTransaction:
        return call_result.RemoteStartTransaction(
            status=await self._answer("RemoteStartTransaction", kw))

    @on(Action.remote_stop_transaction)
    async def on_remote_stop(self, **kw: Any) -> call_result.RemoteStopTransaction:
        return call_result.RemoteStopTransaction(
            status=await self._answer("RemoteStopTransaction", kw))

    @on(Action.reserve_now)
    async def on_reserve_now(self, **kw: Any) -> call_result.ReserveNow:
        return call_result.ReserveNow(status=await self._answer("ReserveNow", kw))

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, **kw: Any) -> call_result.CancelReservation:
        return call_result.CancelReservation(status=await self._answer("CancelReservation", kw))

    @on(Action.unlock_connector)
    async def on_unlock(self, **kw: Any) -> call_result.UnlockConnector:
        return call_result.UnlockConnector(status=await self._answer("UnlockConnector", kw))

    @on(Action.change_availability)
    async def on_change_availability(self, **kw: Any) -> call_result.ChangeAvailability:
        return call_result.ChangeAvailability(
            status=await self._answer("ChangeAvailability", kw))

    @on(Action.change_configuration)
    async def on_change_configuration(self, **kw: Any) -> call_result.ChangeConfiguration:
        status = await self._answer("ChangeConfiguration", kw)
        if self.station_like and status == "Accepted":
            status = self._station_configuration(kw["key"], kw["value"]) or status
        return call_result.ChangeConfiguration(status=status)

    @after(Action.change_configuration)
    async def reconnect_after_change(self, key: str, value: str) -> None:
        if self.station_like and key in ("SecurityProfile", "AuthorizationKey") \
                and self.security.previous is not None:
            self.security.reconnect.set()

    @on(Action.get_configuration)
    async def on_get_configuration(self, **kw: Any) -> call_result.GetConfiguration:
        self.received.append(("GetConfiguration", kw))
        keys = [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]
        if self.feature_profiles is not None:
            keys.append({"key": "SupportedFeatureProfiles", "readonly": True,
                         "value": self.feature_profiles})
        keys.extend({"key": key, "readonly": True, "value": value}
                    for key, value in self.config_keys.items())
        asked = kw.get("key") or []
        known = {k["key"] for k in keys}
        return call_result.GetConfiguration(
            configuration_key=[k for k in keys if not asked or k["key"] in asked
                               or k["key"] == "HeartbeatInterval"],
            unknown_key=[k for k in asked if k not in known] or None)

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id: int,
                                      cs_charging_profiles: dict[str, Any]
                                      ) -> call_result.SetChargingProfile:
        answer = await self._answer("SetChargingProfile", {
            "connector_id": connector_id, "cs_charging_profiles": cs_charging_profiles})
        periods = cs_charging_profiles["charging_schedule"]["charging_schedule_period"]
        self.journal.append((asyncio.get_running_loop().time(), self.id, connector_id,
                             float(periods[0]["limit"]), answer))
        if answer == "Accepted":
            purpose = cs_charging_profiles["charging_profile_purpose"]
            self.profiles[(connector_id, purpose)] = cs_charging_profiles
        return call_result.SetChargingProfile(status=answer)

    def limit(self, connector_id: int) -> float | None:
        for key in ((connector_id, "TxProfile"), (connector_id, "TxDefaultProfile"),
                    (0, "TxDefaultProfile")):
            if key in self.profiles:
                periods = self.profiles[key]["charging_schedule"]["charging_schedule_period"]
                return float(periods[0]["limit"])
        return None

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kw: Any) -> call_result.ClearChargingProfile:
        answer = await self._answer("ClearChargingProfile", kw)
        if answer == "Accepted":
            for key, profile in list(self.profiles.items()):
                if kw.get("id") in (None, profile["charging_profile_id"]):
                    del self.profiles[key]
        return call_result.ClearChargingProfile(status=answer)

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id: int, duration: int, **kw: Any
                                        ) -> call_result.GetCompositeSchedule:
        answer = await self._answer("GetCompositeSchedule", {
            "connector_id": connector_id, "duration": duration, **kw})
        limit = self.limit(connector_id)
        if answer != "Accepted" or limit is None:
            return call_result.GetCompositeSchedule(status="Rejected")
        return call_result.GetCompositeSchedule(
            status="Accepted", connector_id=connector_id,
            schedule_start="2026-03-01T10:00:00Z",
            charging_schedule={"duration": duration, "charging_rate_unit": "A",
                               "charging_schedule_period": [
                                   {"start_period": 0, "limit": limit}]})

    def tx_ended(self, connector_id: int) -> None:
        """A transaction's TxProfile goes when it ends."""
        self.profiles.pop((connector_id, "TxProfile"), None)

    @on(Action.reset)
    async def on_reset(self, **kw: Any) -> call_result.Reset:
        return call_result.Reset(status=await self._answer("Reset", kw))

    @on(Action.trigger_message)
    async def on_trigger(self, **kw: Any) -> call_result.TriggerMessage:
        return call_result.TriggerMessage(status=await self._answer("TriggerMessage", kw))

    @on(Action.clear_cache)
    async def on_clear_cache(self, **kw: Any) -> call_result.ClearCache:
        return call_result.ClearCache(status=await self._answer("ClearCache", kw))

    @on(Action.send_local_list)
    async def on_send_local_list(self, **kw: Any) -> call_result.SendLocalList:
        return call_result.SendLocalList(status=await self._answer("SendLocalList", kw))

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **kw: Any) -> call_result.GetLocalListVersion:
        self.received.append(("GetLocalListVersion", kw))
        return call_result.GetLocalListVersion(list_version=self.local_list_version)

    @on(Action.update_firmware)
    async def on_update_firmware(self, **kw: Any) -> call_result.UpdateFirmware:
        self.received.append(("UpdateFirmware", kw))
        self.events.put_nowait("UpdateFirmware")
        if self.fetch_firmware:
            self._in_background(self._download(kw["location"]))
        return call_result.UpdateFirmware()

    @on(Action.signed_update_firmware)
    async def on_signed_update_firmware(self, **kw: Any) -> call_result.SignedUpdateFirmware:
        """Answered from ``answers`` (Accepted unless told); downloads nothing."""
        self.answers.setdefault("SignedUpdateFirmware", "Accepted")
        return call_result.SignedUpdateFirmware(
            status=await self._answer("SignedUpdateFirmware", kw))

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, **kw: Any) -> call_result.GetDiagnostics:
        self.received.append(("GetDiagnostics", kw))
        self.events.put_nowait("GetDiagnostics")
        if self.upload_body is not None:
            self._in_background(self._upload(kw["location"], None))
        return call_result.GetDiagnostics(file_name=self.upload_name)

    @on(Action.get_log)
    async def on_get_log(self, **kw: Any) -> call_result.GetLog:
        status = await self._answer("GetLog", kw)
        if status == "Accepted" and self.upload_body is not None:
            self._in_background(self._upload(kw["log"]["remote_location"], kw["request_id"]))
        return call_result.GetLog(status=status, filename=self.upload_name)

    def _in_background(self, work: Any) -> None:
        self.file_work_done.clear()
        task = asyncio.create_task(work)
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        task.add_done_callback(lambda _: self.file_work_done.set())

    async def _download(self, url: str) -> None:
        await self.call(call.FirmwareStatusNotification(status="Downloading"))
        self.downloaded = b""
        async with httpx.AsyncClient(timeout=10) as http:
            if self.cut_download_at is not None:
                async with http.stream("GET", url) as response:
                    self.http_statuses.append(response.status_code)
                    async for chunk in response.aiter_bytes(16):
                        self.downloaded += chunk
                        if len(self.downloaded) >= self.cut_download_at:
                            break
                self.downloaded = self.downloaded[:self.cut_download_at]
            response = await http.get(url, headers={"Range": f"bytes={len(self.downloaded)}-"}
                                      if self.downloaded else None)
            self.http_statuses.append(response.status_code)
        if response.status_code not in (200, 206):
            await self.call(call.FirmwareStatusNotification(status="DownloadFailed"))
            return
        self.downloaded += response.content
        for status in ("Downloaded", "Installing", "Installed"):
            await self.call(call.FirmwareStatusNotification(status=status))

    async def _upload(self, url: str, request_id: int | None) -> None:
        async def notify(status: str) -> None:
            if request_id is None:
                await self.call(call.DiagnosticsStatusNotification(status=status))
            else:
                failed = "UploadFailure" if status == "UploadFailed" else status
                await self.call(call.LogStatusNotification(status=failed,
                                                           request_id=request_id))

        await notify("Uploading")
        assert self.upload_body is not None
        async with httpx.AsyncClient(timeout=10) as http:
            if self.upload_method == "PUT":
                response = await http.put(url, content=self.upload_body)
            else:
                response = await http.post(url, files={
                    "file": (self.upload_name, self.upload_body, "application/x-tar")})
        self.http_statuses.append(response.status_code)
        await notify("Uploaded" if response.status_code in (200, 201, 204) else "UploadFailed")

    # -- the Security Whitepaper's messages --

    @on(Action.install_certificate)
    async def on_install_certificate(self, certificate_type: str, certificate: str
                                     ) -> call_result.InstallCertificate:
        status = await self._answer("InstallCertificate", {
            "certificate_type": certificate_type, "certificate": certificate})
        if status == "Accepted":
            self.security.roots[certificate_type].append(certificate)
        return call_result.InstallCertificate(status=status)

    @on(Action.get_installed_certificate_ids)
    async def on_get_installed_certificate_ids(self, certificate_type: str
                                               ) -> call_result.GetInstalledCertificateIds:
        self.received.append(("GetInstalledCertificateIds",
                              {"certificate_type": certificate_type}))
        roots = self.security.roots[certificate_type]
        if not roots:
            return call_result.GetInstalledCertificateIds(status="NotFound")
        return call_result.GetInstalledCertificateIds(
            status="Accepted", certificate_hash_data=[hash_data_of(pem) for pem in roots])

    @on(Action.delete_certificate)
    async def on_delete_certificate(self, certificate_hash_data: dict[str, str]
                                    ) -> call_result.DeleteCertificate:
        self.received.append(("DeleteCertificate",
                              {"certificate_hash_data": certificate_hash_data}))
        for roots in self.security.roots.values():
            for pem in roots:
                if hash_data_of(pem) == certificate_hash_data:
                    if len(roots) == 1:
                        return call_result.DeleteCertificate(status="Failed")
                    roots.remove(pem)
                    return call_result.DeleteCertificate(status="Accepted")
        return call_result.DeleteCertificate(status="NotFound")

    @on(Action.extended_trigger_message)
    async def on_extended_trigger(self, requested_message: str,
                                  connector_id: int | None = None
                                  ) -> call_result.ExtendedTriggerMessage:
        status = await self._answer("ExtendedTriggerMessage", {
            "requested_message": requested_message, "connector_id": connector_id})
        if status == "Accepted" and requested_message == "SignChargePointCertificate":
            self._in_background(self.sign_certificate(self.security.csr(self.id)))
        return call_result.ExtendedTriggerMessage(status=status)

    @on(Action.certificate_signed)
    async def on_certificate_signed(self, certificate_chain: str
                                    ) -> call_result.CertificateSigned:
        status = await self._answer("CertificateSigned",
                                    {"certificate_chain": certificate_chain})
        leaf = x509.load_pem_x509_certificates(certificate_chain.encode())[0]
        pending = self.security.pending_key
        public = (serialization.Encoding.DER,
                  serialization.PublicFormat.SubjectPublicKeyInfo)
        if pending is None or leaf.public_key().public_bytes(*public) != \
                pending.public_key().public_bytes(*public):
            status = "Rejected"
        if status == "Accepted":
            self.security.key, self.security.chain = pending, certificate_chain
            self.security.pending_key = None
        return call_result.CertificateSigned(status=status)

    async def sign_certificate(self, csr: str) -> str:
        """Send SignCertificate; the backend's answer."""
        self.security.csrs.append(csr)
        result = await self.call(call.SignCertificate(csr=csr))
        self.security.sign_answers.append(str(result.status))
        return str(result.status)

    async def security_event(self, event_type: str, tech_info: str | None = None,
                             timestamp: datetime | None = None) -> Any:
        return await self.call(call.SecurityEventNotification(
            type=event_type, timestamp=iso(timestamp or datetime.now(UTC)),
            tech_info=tech_info))

    def _station_configuration(self, key: str, value: str) -> str | None:
        """A station's answer to SecurityProfile / AuthorizationKey / CpoName, or None for
        another key: the profile only upward with its prerequisites, the key only over
        TLS; both take effect by reconnecting (the previous ones kept as a fallback)."""
        security = self.security
        if key == "CpoName":
            security.cpo_name = value
            return "Accepted"
        if key == "SecurityProfile":
            profile = int(value)
            if profile <= security.profile or (profile >= 2 and not security.roots[CS_ROOT]) \
                    or (profile == 3 and security.chain is None):
                return "Rejected"
            security.previous = (security.profile, security.password)
            security.profile = profile
            return "Accepted"
        if key == "AuthorizationKey":
            if security.profile < 2:
                return "Rejected"
            security.previous = (security.profile, security.password)
            security.password = value
            return "Accepted"
        return None

    # -- what the charger sends --

    async def boot(self) -> Any:
        return await self.call(call.BootNotification(charge_point_model="SimModel",
                                                     charge_point_vendor="chargerfw",
                                                     firmware_version="test"))

    async def status(self, connector_id: int, status: str, error_code: str = "NoError") -> Any:
        return await self.call(call.StatusNotification(
            connector_id=connector_id, error_code=error_code, status=status,
            timestamp=iso(datetime.now(UTC))))

    async def authorize(self, id_tag: str) -> str:
        result = await self.call(call.Authorize(id_tag=id_tag))
        return str(result.id_tag_info["status"])

    async def start_tx(self, connector_id: int, id_tag: str, meter_start: int, timestamp: datetime,
                    reservation_id: int | None = None) -> Any:
        return await self.call(call.StartTransaction(
            connector_id=connector_id, id_tag=id_tag, meter_start=meter_start,
            timestamp=iso(timestamp), reservation_id=reservation_id))

    async def meter(self, connector_id: int, transaction_id: int, timestamp: datetime,
                    wh: float, amps: float | None = None, watts: float | None = None) -> Any:
        sampled = [{"value": str(wh), "measurand": "Energy.Active.Import.Register",
                    "unit": "Wh", "context": "Sample.Periodic"}]
        if amps is not None:
            sampled.append({"value": str(amps), "measurand": "Current.Import", "unit": "A",
                            "phase": "L1"})
        if watts is not None:
            sampled.append({"value": str(watts), "measurand": "Power.Active.Import",
                            "unit": "W"})
        return await self.call(call.MeterValues(
            connector_id=connector_id, transaction_id=transaction_id,
            meter_value=[{"timestamp": iso(timestamp), "sampledValue": sampled}]))

    async def wire_answer(self, payload: Any) -> Any:
        """Send ``payload`` and return the CSMS's CALLRESULT payload as it was on the wire
        (camelCase keys, nothing the library added or dropped)."""
        seen = len(self.frames)
        await self.call(payload, suppress=False)
        answers = [json.loads(f) for f in self.frames[seen:]]
        [answer] = [a for a in answers if a[0] == 3]
        return answer[2]

    async def stop_tx(self, transaction_id: int, meter_stop: int, timestamp: datetime,
                   id_tag: str | None = None, reason: str = "Local") -> Any:
        return await self.call(call.StopTransaction(
            meter_stop=meter_stop, timestamp=iso(timestamp), transaction_id=transaction_id,
            reason=reason, id_tag=id_tag))


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def _connection_recorded(csms: RunningCsms, charge_point_id: str) -> bool:
    """The backend stored the connection (and its security profile), as tools reading the
    database (`cp security-migrate`) need."""
    point = await csms.db(csms.store.get_charge_point, charge_point_id)
    return point is not None and point["connected"] and point["security_profile"] is not None


@contextlib.asynccontextmanager
async def sim_charger(csms: RunningCsms, charge_point_id: str,
                      password: str | None = None) -> AsyncIterator[SimCharger]:
    headers = basic_auth(charge_point_id, password) if password is not None else None
    async with connect(f"{csms.ocpp_url}/{charge_point_id}", subprotocols=["ocpp1.6"],
                       additional_headers=headers) as ws:
        charger = SimCharger(charge_point_id, ws)
        task = asyncio.create_task(charger.start())
        try:
            for _ in range(200):  # the server registers the connection after the handshake
                if charge_point_id in csms.ocpp.connected and await _connection_recorded(
                        csms, charge_point_id):
                    break
                await asyncio.sleep(0.01)
            yield charger
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@dataclass
class SimStation:
    """A charger double that connects as a station does for its security profile (1: ws +
    Basic, 2: wss + Basic, verifying the server with its installed
    CentralSystemRootCertificates, 3: wss with the client certificate it was signed), and
    reconnects when a change takes effect; a connection refused with a new profile or key
    falls back to the previous one. ``profiles`` lists the profile of each connection made."""

    charge_point_id: str
    plain_url: str  # ws://host:port/ocpp
    tls_url: str  # wss://host:port/ocpp
    workdir: Path
    security: ChargerSecurity
    charger: SimCharger | None = None
    profiles: list[int] = field(default_factory=list)
    fallbacks: int = 0
    refusals: list[str] = field(default_factory=list)  # why connecting failed
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata="".join(
            self.security.roots[CS_ROOT]) or None)
        if self.security.profile == 3:
            assert self.security.key is not None and self.security.chain is not None
            cert, key = self.workdir / "client.pem", self.workdir / "client.key"
            cert.write_text(self.security.chain)
            key.write_bytes(self.security.key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
            context.load_cert_chain(cert, key)
        return context

    async def _connect(self) -> ClientConnection:
        security = self.security
        url = self.plain_url if security.profile < 2 else self.tls_url
        headers = basic_auth(self.charge_point_id, security.password) \
            if security.profile in (1, 2) and security.password else None
        return await connect(f"{url}/{self.charge_point_id}", subprotocols=["ocpp1.6"],
                             additional_headers=headers,
                             ssl=self._tls() if security.profile >= 2 else None,
                             open_timeout=5)

    async def run(self) -> None:
        while True:
            try:
                ws = await self._connect()
            except Exception as exc:
                self.refusals.append(repr(exc))
                previous = self.security.previous
                if previous is None:
                    await asyncio.sleep(0.1)
                    continue
                self.fallbacks += 1
                self.security.profile, self.security.password = previous
                self.security.previous = None
                continue
            self.security.previous = None
            self.profiles.append(self.security.profile)
            charger = SimCharger(self.charge_point_id, ws)
            charger.security, charger.station_like = self.security, True
            self.charger = charger
            self.security.reconnect.clear()
            self.connected.set()
            serving = asyncio.create_task(charger.start())
            reconnect = asyncio.create_task(self.security.reconnect.wait())
            await asyncio.wait([serving, reconnect], return_when=asyncio.FIRST_COMPLETED)
            for task in (serving, reconnect):
                task.cancel()
            await ws.close()
            self.connected.clear()


@contextlib.asynccontextmanager
async def sim_station(csms: RunningCsms, station: SimStation) -> AsyncIterator[SimStation]:
    """``station`` connected to ``csms`` (and reconnecting) until the block ends."""
    task = asyncio.create_task(station.run())
    try:
        for _ in range(500):
            if station.charge_point_id in csms.ocpp.connected and station.connected.is_set():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"the station did not connect: {station.refusals[-3:]}")
        yield station
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


# --- eMSP -------------------------------------------------------------------------------------

@dataclass
class Received:
    method: str
    path: str
    body: Any
    headers: dict[str, str]
    accepted: bool = True


@dataclass
class EmspDouble:
    """An eMSP on loopback: OCPI versions/details, receivers for pushes and CommandResults,
    and a tokens sender answering real-time authorization from ``authorize_answers``."""

    token_b: str = "emsp-token-b-0123456789"  # the token the CPO uses to call us
    token_a: str = "emsp-token-a-for-cpo"  # when the CPO starts the handshake
    cpo_token: str | None = None  # the token the CPO gave us (its B) in that case
    country_code: str = "DE"
    party_id: str = "EMS"
    port: int = 0
    received: list[Received] = field(default_factory=list)
    authorize_answers: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    fail_pushes: int = 0  # answer this many pushes with HTTP 503 first
    # Answer this many PATCHes with OCPI 2001 (HTTP 400), as an eMSP that lost the object.
    refuse_patches: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    role: str = "EMSP"  # HUB: also a hubclientinfo Sender listing ``client_infos``
    # The tokens Sender list (GET /emsp/tokens), ``page_size`` per page at most.
    token_list: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 2
    next_link_base: str | None = None  # next-page links point here instead (another host)
    fail_token_offsets: set[int] = field(default_factory=set)  # pages answered HTTP 500
    client_infos: list[dict[str, Any]] = field(default_factory=list)
    endpoints_base: str | None = None  # where the version details say the modules are

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pushes(self, module: str, method: str | None = None) -> list[Received]:
        """Pushes the eMSP accepted (refused attempts are left out)."""
        return [r for r in self.received if r.path.startswith(f"/emsp/{module}") and r.accepted
                and (method is None or r.method == method)]

    async def wait_for(self, predicate: Any, timeout: float = 5.0) -> list[Received]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            found = [r for r in self.received if r.accepted and predicate(r)]
            if found:
                return found
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"eMSP did not receive the expected call; got "
                                     f"{[(r.method, r.path) for r in self.received]}")
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.1)

    def app(self) -> FastAPI:
        app = FastAPI()
        expected = "Token " + base64.b64encode(self.token_b.encode()).decode()
        # versions and details also answer TOKEN_A (a CPO starting the handshake uses it).
        readers = {expected, "Token " + base64.b64encode(self.token_a.encode()).decode()}

        def envelope(data: Any, code: int = 1000) -> dict[str, Any]:
            return {"data": data, "status_code": code, "status_message": "ok",
                    "timestamp": iso(datetime.now(UTC))}

        @app.get("/emsp/versions")
        async def versions(request: Request) -> JSONResponse:
            if request.headers.get("Authorization") not in readers:
                return JSONResponse(envelope(None, 2000), status_code=401)
            return JSONResponse(envelope([{"version": "2.2.1",
                                           "url": f"{self.base}/emsp/2.2.1"}]))

        @app.get("/emsp/2.2.1")
        async def details(request: Request) -> JSONResponse:
            if request.headers.get("Authorization") not in readers:
                return JSONResponse(envelope(None, 2000), status_code=401)
            base = self.endpoints_base or f"{self.base}/emsp"
            return JSONResponse(envelope({"version": "2.2.1", "endpoints": [
                {"identifier": "credentials", "role": "RECEIVER", "url": f"{base}/credentials"},
                {"identifier": "locations", "role": "RECEIVER", "url": f"{base}/locations"},
                {"identifier": "sessions", "role": "RECEIVER", "url": f"{base}/sessions"},
                {"identifier": "cdrs", "role": "RECEIVER", "url": f"{base}/cdrs"},
                {"identifier": "tariffs", "role": "RECEIVER", "url": f"{base}/tariffs"},
                {"identifier": "tokens", "role": "SENDER", "url": f"{base}/tokens"},
                {"identifier": "commands", "role": "SENDER", "url": f"{base}/commands"},
            ] + ([{"identifier": "hubclientinfo", "role": "SENDER",
                   "url": f"{base}/hubclientinfo"}] if self.role == "HUB" else [])}))

        @app.get("/emsp/tokens")
        async def token_list(request: Request) -> JSONResponse:
            self.received.append(Received("GET", request.url.path,
                                          dict(request.query_params), dict(request.headers)))
            self.arrived.set()
            if request.headers.get("Authorization") != expected:
                return JSONResponse(envelope(None, 2000), status_code=401)
            offset = int(request.query_params.get("offset", 0))
            if offset in self.fail_token_offsets:
                return JSONResponse({"error": "down"}, status_code=500)
            limit = min(int(request.query_params.get("limit", 100)), self.page_size)
            since = request.query_params.get("date_from")
            matching = [t for t in self.token_list
                        if since is None or t["last_updated"] >= since]
            page = matching[offset:offset + limit]
            headers = {"X-Total-Count": str(len(matching)), "X-Limit": str(limit)}
            if offset + limit < len(matching):
                params = f"offset={offset + limit}&limit={limit}"
                if since is not None:
                    params += f"&date_from={since}"
                base = self.next_link_base or self.base
                headers["Link"] = f'<{base}/emsp/tokens?{params}>; rel="next"'
            return JSONResponse(envelope(page), headers=headers)

        @app.get("/emsp/hubclientinfo")
        async def client_info_list(request: Request) -> JSONResponse:
            self.received.append(Received("GET", request.url.path,
                                          dict(request.query_params), dict(request.headers)))
            if request.headers.get("Authorization") != expected:
                return JSONResponse(envelope(None, 2000), status_code=401)
            return JSONResponse(envelope(self.client_infos),
                                headers={"X-Total-Count": str(len(self.client_infos))})

        @app.post("/emsp/credentials")
        async def credentials(request: Request) -> JSONResponse:
            token_a = "Token " + base64.b64encode(self.token_a.encode()).decode()
            if request.headers.get("Authorization") != token_a:
                return JSONResponse(envelope(None, 2000), status_code=401)
            body = await request.json()
            # As a real eMSP does: read the CPO's endpoints with the token it gave us.
            async with httpx.AsyncClient() as client:
                auth = {"Authorization": "Token "
                        + base64.b64encode(body["token"].encode()).decode()}
                versions = (await client.get(body["url"], headers=auth)).json()
                if versions["status_code"] != 1000:
                    return JSONResponse(envelope(None, 3001), status_code=400)
            self.cpo_token = body["token"]
            return JSONResponse(envelope({
                "token": self.token_b, "url": f"{self.base}/emsp/versions",
                "roles": [{"role": self.role, "party_id": self.party_id,
                           "country_code": self.country_code,
                           "business_details": {"name": "Test eMSP"}}]}))

        @app.post("/emsp/tokens/{uid}/authorize")
        async def authorize(uid: str, request: Request) -> JSONResponse:
            self.received.append(Received("POST", request.url.path, await _body(request),
                                          dict(request.headers)))
            self.arrived.set()
            answer = self.authorize_answers.get(uid)
            if answer is None:
                return JSONResponse(envelope(None, 2004), status_code=404)
            return JSONResponse(envelope(answer))

        @app.api_route("/emsp/{rest:path}", methods=["PUT", "PATCH", "POST", "DELETE"])
        async def receive(rest: str, request: Request) -> JSONResponse:
            entry = Received(request.method, request.url.path, await _body(request),
                             dict(request.headers), accepted=False)
            self.received.append(entry)
            self.arrived.set()
            if request.headers.get("Authorization") != expected:
                return JSONResponse(envelope(None, 2000), status_code=401)
            if self.fail_pushes > 0:
                self.fail_pushes -= 1
                return JSONResponse({"error": "busy"}, status_code=503)
            if request.method == "PATCH" and self.refuse_patches > 0:
                self.refuse_patches -= 1
                return JSONResponse(envelope(None, 2001), status_code=400)
            entry.accepted = True
            return JSONResponse(envelope(None))

        return app


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        return None
    return await request.json()


@contextlib.asynccontextmanager
async def serving(app: Callable[[socket.socket], FastAPI]) -> AsyncIterator[int]:
    """``app`` (built for its bound socket) served on a loopback port; yields the port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app(sock), log_level="warning", lifespan="off",
                                           access_log=False))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


@contextlib.asynccontextmanager
async def running_emsp(emsp: EmspDouble | None = None) -> AsyncIterator[EmspDouble]:
    emsp = emsp or EmspDouble()

    def app(sock: socket.socket) -> FastAPI:
        emsp.port = sock.getsockname()[1]
        return emsp.app()

    async with serving(app):
        yield emsp


def ocpi_auth(token: str, encode: bool = True) -> dict[str, str]:
    value = base64.b64encode(token.encode()).decode() if encode else token
    return {"Authorization": f"Token {value}"}


def ok(response: httpx.Response, model: Any, http: int = 200) -> Any:
    """The envelope checked (HTTP status, OCPI 1000) and ``data`` parsed with ``model``."""
    assert response.status_code == http, response.text
    envelope = m.Envelope[model].model_validate(response.json())
    assert envelope.status_code == 1000, response.text
    return envelope.data


async def register_emsp(csms: RunningCsms, emsp: EmspDouble) -> str:
    """Add the eMSP (a hub when its role is HUB) as a partner fixed to its party and run the
    credentials handshake as it would; returns TOKEN_C."""
    _, token_a = await csms.db(csms.store.add_partner, "Test eMSP",
                               [Party(emsp.country_code, emsp.party_id, emsp.role)])
    async with httpx.AsyncClient(base_url=csms.api_url) as client:
        versions = await client.get("/ocpi/versions", headers=ocpi_auth(token_a))
        assert versions.status_code == 200, versions.text
        response = await client.post("/ocpi/2.2.1/credentials", headers=ocpi_auth(token_a), json={
            "token": emsp.token_b, "url": f"{emsp.base}/emsp/versions",
            "roles": [{"role": emsp.role, "party_id": emsp.party_id,
                       "country_code": emsp.country_code,
                       "business_details": {"name": "Test eMSP"}}]})
        assert response.status_code == 200, response.text
    return str(response.json()["data"]["token"])


@contextlib.asynccontextmanager
async def csms_running(db: str, **overrides: Any) -> AsyncIterator[RunningCsms]:
    async with running_csms(settings_for(db, **overrides)) as csms:
        yield csms


# --- fixtures' building blocks ----------------------------------------------------------------

def add_test_charger(store: Any, charge_point_id: str = "CP1", password: str | None = "s3cret",
                     tariff_id: str | None = None, location_id: str = "LOC1",
                     connectors: int = 1, publish: bool = True) -> None:
    from chargerfw.csms.store import ConnectorSpec, EvseSpec, LocationSpec

    location = LocationSpec(id=location_id, address="Stationsplein 1", city="Utrecht",
                            country="NLD", latitude="52.08917", longitude="5.11028",
                            time_zone="Europe/Amsterdam", name="Station", postal_code="3511",
                            publish=publish)
    evses = [EvseSpec(uid=f"{charge_point_id}-{n}", ocpp_connector_id=n,
                      evse_id=f"NL*CFW*E{charge_point_id}{n}",
                      connectors=[ConnectorSpec("1", "IEC_62196_T2", "SOCKET", "AC_3_PHASE",
                                                400, 32, 22000)])
             for n in range(1, connectors + 1)]
    store.add_charge_point(charge_point_id, password, location, evses, tariff_id=tariff_id)


# An idTag accepted from an eMSP's whitelist: the RFID token of contract DE-EMS-C001.
ACCEPTED = AuthDecision("Accepted", "WHITELIST", "DE", "EMS", "RFID", "DE-EMS-C001")


def add_registered_partner(store: Store, url: str = "http://emsp.invalid/ocpi",
                           party_id: str = "EMS") -> int:
    """A registered eMSP (DE*``party_id``) that receives sessions, CDRs and locations under
    ``url``; nothing listens there, so its pushes stay queued."""
    party = [Party("DE", party_id)]
    partner_id, _ = store.add_partner("eMSP", party)
    store.register_partner(partner_id, "their-token", f"{url}/versions", "2.2.1", [
        {"identifier": "sessions", "role": "RECEIVER", "url": f"{url}/sessions"},
        {"identifier": "cdrs", "role": "RECEIVER", "url": f"{url}/cdrs"},
        {"identifier": "locations", "role": "RECEIVER", "url": f"{url}/locations"}], party)
    return partner_id


def make_tariff(tariff_id: str = "T1", energy: float = 0.30, time_h: float = 1.20,
                flat: float = 0.50, vat: float = 21.0) -> Any:
    from chargerfw.csms.ocpi.models import Tariff

    return Tariff.model_validate({
        "country_code": "NL", "party_id": "CFW", "id": tariff_id, "currency": "EUR",
        "elements": [{"price_components": [
            {"type": "ENERGY", "price": energy, "vat": vat, "step_size": 1},
            {"type": "TIME", "price": time_h, "vat": vat, "step_size": 1},
            {"type": "FLAT", "price": flat, "vat": vat, "step_size": 1}]}],
        "last_updated": "2026-01-01T00:00:00Z"})


# --- the OCPI API with a registered eMSP ------------------------------------------------------

@dataclass
class OcpiEnv:
    """A running backend with chargers priced by tariff T1, an eMSP registered with it, and
    an HTTP client on its API."""

    csms: RunningCsms
    emsp: EmspDouble
    token_c: str
    client: httpx.AsyncClient

    @property
    def auth(self) -> dict[str, str]:
        return ocpi_auth(self.token_c)


@contextlib.asynccontextmanager
async def ocpi_env(db: str, chargers: int = 1, **overrides: Any) -> AsyncIterator[OcpiEnv]:
    """Chargers CP1..CPn (one EVSE each, at LOC1..LOCn) and a registered eMSP."""
    async with running_emsp() as emsp, csms_running(db, **overrides) as csms:
        await csms.db(csms.store.add_tariff, make_tariff("T1"))
        for n in range(1, chargers + 1):
            await csms.db(add_test_charger, csms.store, f"CP{n}", None, "T1", f"LOC{n}")
        token_c = await register_emsp(csms, emsp)
        async with httpx.AsyncClient(base_url=csms.api_url) as client:
            yield OcpiEnv(csms, emsp, token_c, client)


def error(response: httpx.Response, http: int, code: int) -> str:
    """Assert an OCPI error envelope with HTTP status ``http`` and OCPI status ``code``;
    returns its status message."""
    assert response.status_code == http, response.text
    parsed = m.Envelope[Any].model_validate(response.json())
    assert parsed.status_code == code and parsed.data is None
    assert set(response.json()) == {"data", "status_code", "status_message", "timestamp"}
    return str(parsed.status_message)


def token_body(uid: str, whitelist: str = "ALWAYS", **extra: Any) -> dict[str, Any]:
    """An OCPI Token of the eMSP DE*EMS, as JSON."""
    return {"country_code": "DE", "party_id": "EMS", "uid": uid, "type": "RFID",
            "contract_id": f"DE-EMS-{uid}", "issuer": "Test eMSP", "valid": True,
            "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z", **extra}


_Served = TypeVar("_Served")


@contextlib.contextmanager
def served_in_thread(serving: Callable[[], contextlib.AbstractAsyncContextManager[_Served]]
                     ) -> Iterator[_Served]:
    """What ``serving`` yields, kept running on its own event loop in a thread until the block
    ends: for callers that make plain blocking requests (schemathesis)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def serve() -> None:
        try:
            async with serving() as value:
                box["value"] = value
                box["loop"], box["stop"] = asyncio.get_running_loop(), asyncio.Event()
                ready.set()
                await box["stop"].wait()
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            raise

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30), "the backend did not start"
    if "error" in box:
        raise box["error"]
    try:
        yield box["value"]
    finally:
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(30)


# `charger add` options of a new location.
NEW_LOCATION_OPTIONS = ["--location-id", "LOC1", "--address", "Main 1", "--city", "Utrecht",
                        "--country", "NLD", "--coordinates", "52.08917,5.11028",
                        "--time-zone", "Europe/Amsterdam"]


def run_csms_cli(*args: str) -> tuple[int, str]:
    """``chargerfw csms ARGS`` in this process: (exit code, output)."""
    from click.testing import CliRunner

    from chargerfw.cli import main

    result = CliRunner().invoke(main, ["csms", *args])
    return result.exit_code, result.output
