"""The OCPP 1.6J central system: a websockets server with one ``ocpp`` ChargePoint per charger.

Chargers connect to ``ws://host:port/ocpp/{charge_point_id}`` (``wss://`` with TLS) with
subprotocol ``ocpp1.6`` (other subprotocols are refused by the handshake) and, when the charge
point has a password, HTTP Basic credentials whose user name is the charge point id. Over TLS
with a client CA, a charger may instead present a client certificate whose CN is its id
(security profile 3); from then on it must always do so.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import math
import re
import ssl
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import unquote

from ocpp.exceptions import OCPPError
from ocpp.routing import after, on
from ocpp.v16 import ChargePoint as OcppChargePoint
from ocpp.v16 import call, call_result
from ocpp.v16.enums import Action, DataTransferStatus, GenericStatus, RegistrationStatus
from sqlalchemy.engine import RowMapping
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargerfw.csms import billing
from chargerfw.csms.authorization import Authorizer
from chargerfw.csms.cluster import (
    CALL_ERROR,
    NOT_CONNECTED,
    RESULT,
    TIMEOUT,
    Cluster,
    RemoteAnswer,
    RemoteRequest,
)
from chargerfw.csms.fleet_ca import INVALID_CHARGE_POINT_CERTIFICATE, CsrRefused, FleetCa
from chargerfw.csms.login_limits import LoginLimits, LoginThrottle
from chargerfw.csms.ocpp_values import (
    check_connector_id,
    event_time,
    meter_samples,
    parse_time,
    plausible,
)
from chargerfw.csms.store import AsyncStore, AuthDecision, StartRequest
from chargerfw.csms.store.charger_files import DIAGNOSTICS, FIRMWARE, LOG, SIGNED_FIRMWARE
from chargerfw.csms.store.fleet_security import NOT_DELIVERED, IssuedRecord
from chargerfw.csms.store.hashing import VerifiedPasswords
from chargerfw.csms.tls import certificate_common_names
from chargerfw.logs import get_logger
from chargerfw.ocppj.frames import Answer, Ignore, check_frame
from chargerfw.ocppj.library_log import LIBRARY_LOGGER, WEBSOCKETS_SERVER_LOGGER

log = get_logger(__name__)

SUBPROTOCOL = Subprotocol("ocpp1.6")
PATH_PREFIX = "/ocpp/"
MAX_ID_LENGTH = 48
# A charge point id as it may stand in the URL path: letters, digits and the path characters
# RFC 3986 allows unencoded (no "/", no "%", no spaces or controls).
CHARGE_POINT_ID = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+")
FEATURE_PROFILES_KEY = "SupportedFeatureProfiles"
SEEN_NOTE_INTERVAL_S = 60.0
# Charger events of the security extension: a security event the charger reported, one the
# backend saw itself (e.g. a CSR it refused), and the charger's answer to a certificate the
# fleet CA signed for it.
SECURITY_EVENT_NOTIFICATION = "SecurityEventNotification"
BACKEND_SECURITY_EVENT = "SecurityEvent"
CERTIFICATE_SIGNED = "CertificateSigned"
# The charger event of a connection refused at the handshake, and its statuses.
CONNECTION_REFUSED = "ConnectionRefused"
CERTIFICATE_ID_MISMATCH = "CertificateIdMismatch"
CERTIFICATE_REQUIRED = "CertificateRequired"


# The OCPP message each stored file status comes from, as charger events name it.
_NOTIFICATION_OF_KIND = {FIRMWARE: "FirmwareStatusNotification",
                         SIGNED_FIRMWARE: "SignedFirmwareStatusNotification",
                         DIAGNOSTICS: "DiagnosticsStatusNotification",
                         LOG: "LogStatusNotification"}

class LoadListener(Protocol):
    """Hears what changes a site's load (the site balancer)."""

    def charger_changed(self, charge_point_id: str) -> None: ...

    def charger_booted(self, charge_point_id: str) -> None: ...

    def charger_connected(self, charge_point_id: str) -> None: ...

    def status_changed(self, charge_point_id: str, connector_id: int, status: str) -> None: ...

    def current_measured(self, charge_point_id: str, connector_id: int,
                         drawn_a: float) -> None: ...


class ChargerNotConnected(Exception):
    """The charge point has no open OCPP connection."""


class ChargerCallError(Exception):
    """The charge point answered a request with a CALLERROR."""


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ocpp_time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def id_tag_info(decision: AuthDecision) -> dict[str, str]:
    """OCPP IdTagInfo of a decision: a time-boxed one (a card with an expiry, a command
    vouching for the idTag) carries its expiry, so the charger does not cache it beyond, and
    a token in a group its parentIdTag."""
    info = {"status": decision.status}
    if decision.expires_at is not None:
        info["expiry_date"] = decision.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if decision.parent_id_tag is not None:
        info["parent_id_tag"] = decision.parent_id_tag
    return info


def connection_security_profile(connection: ServerConnection) -> int:
    """The OCPP security profile a charger connected with, as the connection shows it: 3 over
    TLS with a (verified) client certificate, 2 over TLS with Basic auth, 1 with Basic auth
    without TLS, 0 without credentials."""
    ssl_object = connection.transport.get_extra_info("ssl_object")
    if ssl_object is not None and ssl_object.getpeercert():
        return 3
    if connection.request is None or _basic_credentials(connection.request) is None:
        return 0
    return 2 if ssl_object is not None else 1


class _EveryAnswer:
    """Answers are matched to the backend's CALLs by the library itself."""

    def __contains__(self, unique_id: object) -> bool:
        return True


_EVERY_ANSWER = _EveryAnswer()


def handles(action: Action) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@on(action)`` without the library's JSON-schema check: ``route_message`` checked the
    CALL against the same schema already (our answers are built from the library's typed
    payloads and checked by the test chargers, which validate every CALLRESULT)."""
    return on(action, skip_schema_validation=True)


class ChargerConnection(OcppChargePoint):
    """The central system's side of one charger's OCPP connection. ``security_profile`` is
    the security profile it connected with (see :func:`connection_security_profile`)."""

    def __init__(self, charge_point_id: str, connection: ServerConnection,
                 server: OcppServer) -> None:
        # Frames at DEBUG with secrets (AuthorizationKey, passwords) redacted: INFO says
        # what happened, not every frame.
        super().__init__(charge_point_id, connection, response_timeout=server.response_timeout,
                         logger=LIBRARY_LOGGER)
        self._server = server
        self._db = server.db
        self._seen_noted_at = time.monotonic()  # the connect itself is noted
        self.security_profile = connection_security_profile(connection)

    async def route_message(self, raw_msg: str | bytes) -> None:
        # Any message is a sign of life (a charger need not send heartbeats while it sends
        # other messages); the store hears of it at most once a minute.
        now = time.monotonic()
        if now - self._seen_noted_at >= SEEN_NOTE_INTERVAL_S:
            self._seen_noted_at = now
            if await self._db(self._db.store.record_seen, self.id):
                self._server.changed()
        raw = raw_msg if isinstance(raw_msg, str) else raw_msg.decode("utf-8", "replace")
        verdict = check_frame(raw, self.route_map, answering=True,
                              awaited_answers=_EVERY_ANSWER)
        if isinstance(verdict, Answer):
            # One line per bad frame; the library would log a traceback, or nothing at all.
            log.warning("csms.bad_frame", charge_point=self.id, code=verdict.error.code,
                        cause=str(verdict.error.details.get("cause", ""))[:200])
            await self._send(verdict.frame())
            return
        if isinstance(verdict, Ignore):
            return
        await super().route_message(raw)

    @handles(Action.boot_notification)
    async def on_boot_notification(self, charge_point_vendor: str, charge_point_model: str,
                                   **extra: Any) -> call_result.BootNotification:
        changes = await self._db(self._db.store.record_boot, self.id, charge_point_vendor,
                                 charge_point_model, extra.get("charge_point_serial_number"),
                                 extra.get("firmware_version"))
        if changes:
            self._server.changed()
        return call_result.BootNotification(current_time=_now_iso(),
                                            interval=self._server.heartbeat_interval,
                                            status=RegistrationStatus.accepted)

    @after(Action.boot_notification)
    async def learn_features(self, **_boot: Any) -> None:
        """Ask a booted charger which OCPP feature profiles it supports: its EVSEs'
        capabilities (e.g. RESERVABLE) follow what it says. Its site's limits are sent to
        it again."""
        if (listener := self._server.load_listener) is not None:
            listener.charger_booted(self.id)
        try:
            keys, _ = await self._server.get_configuration(self.id, [FEATURE_PROFILES_KEY])
        except (ChargerNotConnected, ChargerCallError, TimeoutError) as exc:
            log.info("csms.feature_profiles_unknown", charge_point=self.id, error=str(exc))
            return
        for entry in keys:
            if entry.get("key") == FEATURE_PROFILES_KEY and entry.get("value") is not None:
                if await self._db(self._db.store.record_feature_profiles, self.id,
                                  str(entry["value"]).split(",")):
                    self._server.changed()

    @handles(Action.heartbeat)
    async def on_heartbeat(self) -> call_result.Heartbeat:
        if await self._db(self._db.store.record_heartbeat, self.id):
            self._server.changed()
        return call_result.Heartbeat(current_time=_now_iso())

    @handles(Action.status_notification)
    async def on_status_notification(self, connector_id: int, error_code: str, status: str,
                                     timestamp: str | None = None, info: str | None = None,
                                     vendor_id: str | None = None,
                                     vendor_error_code: str | None = None
                                     ) -> call_result.StatusNotification:
        check_connector_id(connector_id, 0)
        stamp = parse_time(timestamp) if timestamp else None
        if stamp is not None and not plausible(stamp, datetime.now(UTC)):
            stamp = None  # the charger's clock, not the time of the change
        changes = await self._db(self._db.store.record_status, self.id, connector_id, status,
                                 error_code, stamp, info, vendor_id, vendor_error_code)
        if changes:
            self._server.changed()
        if (listener := self._server.load_listener) is not None:
            listener.status_changed(self.id, connector_id, status)
        return call_result.StatusNotification()

    @handles(Action.authorize)
    async def on_authorize(self, id_tag: str) -> call_result.Authorize:
        decision = await self._server.authorizer.authorize(self.id, id_tag)
        return call_result.Authorize(id_tag_info=id_tag_info(decision))

    @handles(Action.start_transaction)
    async def on_start_transaction(self, connector_id: int, id_tag: str, meter_start: int,
                                   timestamp: str, reservation_id: int | None = None
                                   ) -> call_result.StartTransaction:
        check_connector_id(connector_id, 1)
        request = StartRequest(self.id, connector_id, id_tag, meter_start,
                               event_time(timestamp, self.id, "StartTransaction"),
                               reservation_id)
        tx = await self._db(self._db.store.transaction_for_start, request)
        if tx is None:  # the first delivery of this StartTransaction
            tx, decision = await self._open_transaction(request)
        else:
            decision = await self._server.authorizer.recorded(self.id, id_tag,
                                                              tx["id_tag_status"])
        log.info("csms.start_transaction", charge_point=self.id, transaction=tx["id"],
                 status=tx["id_tag_status"])
        return call_result.StartTransaction(transaction_id=tx["id"],
                                            id_tag_info=id_tag_info(decision))

    @after(Action.start_transaction)
    async def share_after_start(self, **_start: Any) -> None:
        """A session began: its site is shared again (after the answer, so the charger
        knows the transaction a TxProfile names)."""
        if (listener := self._server.load_listener) is not None:
            listener.charger_changed(self.id)

    @after(Action.stop_transaction)
    async def share_after_stop(self, **_stop: Any) -> None:
        if (listener := self._server.load_listener) is not None:
            listener.charger_changed(self.id)

    async def _open_transaction(self, request: StartRequest) -> tuple[RowMapping, AuthDecision]:
        """Authorise the idTag at the EVSE of the connector and open the transaction."""
        store = self._db.store
        evse = await self._db(store.evse_for_connector, self.id, request.connector_id)
        decision = await self._server.authorizer.authorize(
            self.id, request.id_tag, evse["location_id"] if evse else None,
            evse["uid"] if evse else None)
        tx, created = await self._db(store.start_transaction, request, decision)
        if created:
            self._server.changed()
            # It closed the transaction the charger left open on that connector, if any.
            self._server.transaction_ended()
            return tx, decision
        # The same start arrived twice at once: answer with what the first copy stored.
        return tx, await self._server.authorizer.recorded(self.id, request.id_tag,
                                                          tx["id_tag_status"])

    @handles(Action.stop_transaction)
    async def on_stop_transaction(self, meter_stop: int, timestamp: str, transaction_id: int,
                                  reason: str | None = None, id_tag: str | None = None,
                                  transaction_data: list[dict[str, Any]] | None = None
                                  ) -> call_result.StopTransaction:
        samples = meter_samples(transaction_data or [], self.id)
        tx, stopped = await self._db(self._db.store.stop_transaction, self.id, transaction_id,
                                     meter_stop, event_time(timestamp, self.id, "StopTransaction"),
                                     reason, samples)
        if tx is None:
            log.warning("csms.stop_unknown_transaction", charge_point=self.id,
                        transaction=transaction_id)
        if stopped:
            self._server.changed()
            self._server.transaction_ended()
        if id_tag is None:
            return call_result.StopTransaction()
        decision = await self._server.authorizer.standing(
            self.id, id_tag, (tx["id_tag"], tx["id_tag_status"]) if tx is not None else None)
        return call_result.StopTransaction(id_tag_info=id_tag_info(decision))

    @handles(Action.meter_values)
    async def on_meter_values(self, connector_id: int, meter_value: list[dict[str, Any]],
                              transaction_id: int | None = None) -> call_result.MeterValues:
        check_connector_id(connector_id, 0)
        samples = meter_samples(meter_value, self.id)
        tx = await self._db(self._db.store.add_meter_values, self.id, connector_id,
                            transaction_id, samples)
        if tx is not None:
            self._server.changed()
        currents = [s.value for s in samples if s.measurand == billing.CURRENT_IMPORT]
        if (listener := self._server.load_listener) is not None and currents \
                and transaction_id is not None:
            listener.current_measured(self.id, connector_id, max(currents))
        return call_result.MeterValues()

    async def _file_status(self, kind: str, status: str, request_id: int | None = None
                           ) -> None:
        log.info("csms.file_status", charge_point=self.id, kind=kind, status=status,
                 request_id=request_id)
        await self._db(self._db.store.record_file_status, self.id, kind, status, request_id)
        event: dict[str, Any] = {"status": status}
        if request_id is not None:
            event["requestId"] = request_id
        await self._db(self._db.store.record_charge_point_event, self.id,
                       _NOTIFICATION_OF_KIND[kind], event)

    @handles(Action.firmware_status_notification)
    async def on_firmware_status(self, status: str) -> call_result.FirmwareStatusNotification:
        await self._file_status(FIRMWARE, status)
        return call_result.FirmwareStatusNotification()

    @handles(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status(self, status: str, request_id: int
                                        ) -> call_result.SignedFirmwareStatusNotification:
        await self._file_status(SIGNED_FIRMWARE, status, request_id)
        return call_result.SignedFirmwareStatusNotification()

    @handles(Action.diagnostics_status_notification)
    async def on_diagnostics_status(self, status: str
                                    ) -> call_result.DiagnosticsStatusNotification:
        await self._file_status(DIAGNOSTICS, status)
        return call_result.DiagnosticsStatusNotification()

    @handles(Action.log_status_notification)
    async def on_log_status(self, status: str, request_id: int
                            ) -> call_result.LogStatusNotification:
        await self._file_status(LOG, status, request_id)
        return call_result.LogStatusNotification()

    @handles(Action.data_transfer)
    async def on_data_transfer(self, vendor_id: str, message_id: str | None = None,
                               data: str | None = None) -> call_result.DataTransfer:
        log.info("csms.data_transfer", charge_point=self.id, vendor_id=vendor_id,
                 message_id=message_id)
        return call_result.DataTransfer(status=DataTransferStatus.unknown_vendor_id)

    # -- the Security Whitepaper's messages from the charger --

    @handles(Action.security_event_notification)
    async def on_security_event(self, type: str, timestamp: str,
                                tech_info: str | None = None
                                ) -> call_result.SecurityEventNotification:
        stamp = event_time(timestamp, self.id, "SecurityEventNotification")
        log.info("csms.security_event", charge_point=self.id, type=type, tech_info=tech_info)
        await self._db(self._db.store.record_charge_point_event, self.id,
                       SECURITY_EVENT_NOTIFICATION,
                       {"type": type, "timestamp": _ocpp_time(stamp), "techInfo": tech_info},
                       type)
        return call_result.SecurityEventNotification()

    @handles(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str) -> call_result.SignCertificate:
        """Accepted when the fleet CA will sign the CSR; it is signed and sent after this
        answer (CertificateSigned). A refused CSR is stored as a security event."""
        ca = self._server.fleet_ca
        if ca is None:
            log.warning("csms.sign_certificate_without_ca", charge_point=self.id)
            await self._db(self._db.store.record_charge_point_event, self.id, "SignCertificate",
                           {"status": "Rejected",
                            "detail": "this backend has no fleet CA (serve --ca-dir)"})
            return call_result.SignCertificate(status=GenericStatus.rejected)
        try:
            ca.check_csr(csr, self.id)
        except CsrRefused as exc:
            log.warning("csms.csr_refused", charge_point=self.id, reason=str(exc))
            await self._db(self._db.store.record_charge_point_event, self.id,
                           BACKEND_SECURITY_EVENT,
                           {"type": INVALID_CHARGE_POINT_CERTIFICATE, "timestamp": _now_iso(),
                            "techInfo": f"SignCertificate refused: {exc}",
                            "status": "Rejected", "detail": str(exc)},
                           INVALID_CHARGE_POINT_CERTIFICATE)
            return call_result.SignCertificate(status=GenericStatus.rejected)
        return call_result.SignCertificate(status=GenericStatus.accepted)

    @after(Action.sign_certificate)
    async def send_signed_certificate(self, csr: str) -> None:
        """Sign an accepted CSR, keep the certificate and send it (CertificateSigned)."""
        ca = self._server.fleet_ca
        if ca is None:
            return
        try:
            request = ca.check_csr(csr, self.id)
        except CsrRefused:
            return  # answered Rejected
        issued = ca.sign(request, self.id)
        record_id = await self._db(self._db.store.record_issued_certificate, IssuedRecord(
            self.id, issued.serial, issued.fingerprint,
            issued.certificate.subject.rfc4514_string(), issued.not_before, issued.not_after,
            issued.chain_pem))
        log.info("csms.certificate_issued", charge_point=self.id, serial=issued.serial,
                 not_after=_ocpp_time(issued.not_after))
        try:
            status = await self._server.certificate_signed(self.id, issued.chain_pem)
            detail = f"the charger answered {status}"
        except (ChargerNotConnected, ChargerCallError, TimeoutError) as exc:
            status, detail = NOT_DELIVERED, f"not delivered: {type(exc).__name__} {exc}"
        await self._db(self._db.store.record_certificate_answer, record_id, status)
        log.info("csms.certificate_signed_answer", charge_point=self.id, serial=issued.serial,
                 status=status)
        await self._db(self._db.store.record_charge_point_event, self.id, CERTIFICATE_SIGNED,
                       {"status": status, "serial": issued.serial,
                        "not_after": _ocpp_time(issued.not_after), "detail": detail})


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("Authorization")
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip(), validate=True).decode(
            "utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _source_address(connection: ServerConnection) -> str | None:
    remote = connection.remote_address
    return str(remote[0]) if remote else None


class OcppServer:
    """Accepts charger connections and sends them requests on the backend's behalf."""

    def __init__(self, db: AsyncStore, authorizer: Authorizer, *, auto_register: bool = False,
                 heartbeat_interval: int = 300, response_timeout: float = 30.0,
                 on_change: Callable[[], None] | None = None,
                 on_transaction_end: Callable[[], None] | None = None,
                 login_limits: LoginLimits | None = None, fleet_ca: FleetCa | None = None,
                 cluster: Cluster | None = None) -> None:
        self.db = db
        # With several backend processes on one database: chargers held by another process
        # are reached through it.
        self.cluster = cluster
        if cluster is not None:
            cluster.serve_calls(self.send_passed_request)
            cluster.on_evicted(self.drop_all)
            cluster.on_taken(self.drop_taken)
        self.fleet_ca = fleet_ca  # signs chargers' CSRs (None: SignCertificate is Rejected)
        self.login_throttle = LoginThrottle(login_limits)
        self.verified_passwords = VerifiedPasswords()
        self.authorizer = authorizer
        self.auto_register = auto_register
        self.heartbeat_interval = heartbeat_interval
        self.response_timeout = response_timeout
        self._on_change = on_change
        self._on_transaction_end = on_transaction_end
        # The chargers whose connection this process holds (``is_connected`` answers for
        # the fleet).
        self.connected: dict[str, ChargerConnection] = {}
        # The address each charger last connected from: who may use its one-time file URLs.
        self.last_address: dict[str, str] = {}
        self._servers: list[Server] = []
        self.load_listener: LoadListener | None = None

    def changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def transaction_ended(self) -> None:
        """A transaction was closed: its CDR is due."""
        if self._on_transaction_end is not None:
            self._on_transaction_end()

    async def start(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                    reuse_port: bool = False) -> int:
        """Listen on host:port (0 picks a free port; wss with ``tls``; ``reuse_port``: share
        the port with other processes, the kernel spreading connections); returns the bound
        port. Called again, it listens on another port too (e.g. ws beside wss while
        chargers move from security profile 1 to 2)."""
        server = await serve(self._handle, host, port, subprotocols=[SUBPROTOCOL],
                             process_request=self._process_request,
                             ping_interval=60, ping_timeout=60, ssl=tls,
                             logger=WEBSOCKETS_SERVER_LOGGER, reuse_port=reuse_port or None)
        self._servers.append(server)
        return int(next(iter(server.sockets)).getsockname()[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
            await server.wait_closed()
        self.verified_passwords.close()

    @staticmethod
    def charge_point_id(path: str) -> str | None:
        path = path.split("?", 1)[0]
        if not path.startswith(PATH_PREFIX):
            return None
        try:
            cp_id = unquote(path[len(PATH_PREFIX):], errors="strict")
        except UnicodeDecodeError:
            return None
        if not cp_id or len(cp_id) > MAX_ID_LENGTH or not CHARGE_POINT_ID.fullmatch(cp_id):
            return None
        return cp_id

    async def _process_request(self, connection: ServerConnection,
                               request: Request) -> Response | None:
        cp_id = self.charge_point_id(request.path)
        if cp_id is None:
            return connection.respond(HTTPStatus.NOT_FOUND,
                                      "expected /ocpp/{charge_point_id}\n")
        address = _source_address(connection)
        throttle = self.login_throttle
        wait = throttle.retry_after(cp_id, address)
        if wait > 0:
            log.warning("csms.login_throttled", charge_point=cp_id, address=address,
                        retry_after_s=round(wait, 1))
            return self._throttled(connection, wait)
        common_names = certificate_common_names(connection.transport.get_extra_info("peercert"))
        if common_names:
            return await self._certificate_login(connection, cp_id, common_names, address)
        credentials = _basic_credentials(request)
        store = self.db.store
        charge_point = await self.db(store.get_charge_point, cp_id)
        if charge_point is None:
            if not self.auto_register:
                log.warning("csms.unknown_charge_point", charge_point=cp_id)
                throttle.failed(None, address)
                return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
            if credentials is not None and credentials[0] != cp_id:
                throttle.failed(None, address)
                return self._unauthorized(connection)
            return None  # registered once the handshake has succeeded (see _handle)
        if charge_point["client_certificate_required"]:
            # Once on profile 3, Basic auth alone would be a downgrade.
            log.warning("csms.client_certificate_missing", charge_point=cp_id, address=address)
            await self._refuse_event(cp_id, CERTIFICATE_REQUIRED, address,
                                     "connected without its client certificate")
            throttle.failed(cp_id, address)
            return connection.respond(HTTPStatus.UNAUTHORIZED,
                                      "this charge point must present its client certificate\n")
        if charge_point["password_hash"] is None:
            return None
        if credentials is None or credentials[0] != cp_id or \
                not await self.verified_passwords.matches(cp_id, credentials[1],
                                                          charge_point["password_hash"]):
            log.warning("csms.bad_credentials", charge_point=cp_id, address=address)
            throttle.failed(cp_id, address)
            return self._unauthorized(connection)
        throttle.succeeded(cp_id)
        return None

    async def _certificate_login(self, connection: ServerConnection, cp_id: str,
                                 common_names: list[str], address: str | None
                                 ) -> Response | None:
        """A client certificate the TLS layer verified authenticates the charger whose id
        is its CN (no Basic auth needed); any other id is refused."""
        store = self.db.store
        if common_names != [cp_id]:
            log.warning("csms.certificate_id_mismatch", charge_point=cp_id,
                        certificate_cn=",".join(common_names), address=address)
            await self._refuse_event(cp_id, CERTIFICATE_ID_MISMATCH, address,
                                     f"client certificate CN {','.join(common_names)!r} is "
                                     f"not {cp_id!r}")
            self.login_throttle.failed(cp_id, address)
            return connection.respond(HTTPStatus.FORBIDDEN,
                                      "the client certificate is not this charge point's\n")
        if await self.db(store.get_charge_point, cp_id) is None:
            if not self.auto_register:
                log.warning("csms.unknown_charge_point", charge_point=cp_id)
                self.login_throttle.failed(None, address)
                return connection.respond(HTTPStatus.NOT_FOUND, "unknown charge point\n")
            await self.db(store.auto_register, cp_id, None)
            log.info("csms.auto_registered", charge_point=cp_id)
        if await self.db(store.require_client_certificate, cp_id, True):
            log.info("csms.client_certificate_bound", charge_point=cp_id)
        self.login_throttle.succeeded(cp_id)
        return None

    async def _refuse_event(self, cp_id: str, status: str, address: str | None,
                            detail: str) -> None:
        await self.db(self.db.store.record_charge_point_event, cp_id, CONNECTION_REFUSED,
                      {"status": status, "detail": detail, "address": address})

    @staticmethod
    def _throttled(connection: ServerConnection, wait_s: float) -> Response:
        response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS,
                                      "too many failed logins; try again later\n")
        response.headers["Retry-After"] = str(max(1, math.ceil(wait_s)))
        return response

    @staticmethod
    def _unauthorized(connection: ServerConnection) -> Response:
        response = connection.respond(HTTPStatus.UNAUTHORIZED, "invalid credentials\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="ocpp", charset="UTF-8"'
        return response

    async def _handle(self, connection: ServerConnection) -> None:
        assert connection.request is not None
        cp_id = self.charge_point_id(connection.request.path)
        assert cp_id is not None
        if self.auto_register and await self.db(self.db.store.get_charge_point, cp_id) is None:
            # Only now: a handshake refused after the request (no common subprotocol, say)
            # registers nothing.
            credentials = _basic_credentials(connection.request)
            await self.db(self.db.store.auto_register, cp_id,
                          credentials[1] if credentials else None)
            log.info("csms.auto_registered", charge_point=cp_id)
        charger = ChargerConnection(cp_id, connection, self)
        if (address := _source_address(connection)) is not None:
            self.last_address[cp_id] = address
        previous = self.connected.get(cp_id)
        self.connected[cp_id] = charger
        if previous is not None:
            # The charger reconnected; the old socket is dead to it.
            await previous._connection.close()
        log.info("csms.connected", charge_point=cp_id)
        try:
            # A charger that reconnected here while another process still holds its old
            # (half-open) connection: that process is told to let go.
            previous_holder = None if self.cluster is None \
                else await self.cluster.holder_of(cp_id)
            if await self.db(self.db.store.charger_connected, cp_id, self._worker_id,
                             _source_address(connection)):
                self.changed()
            if previous_holder not in (None, self._worker_id):
                assert self.cluster is not None and previous_holder is not None
                await self.cluster.taken_over(previous_holder, cp_id)
            await self._note_security_profile(charger)
            if self.load_listener is not None:
                self.load_listener.charger_connected(cp_id)
            await charger.start()
        except ConnectionClosed:
            pass
        finally:
            if self.connected.get(cp_id) is charger:
                del self.connected[cp_id]
                await self.db(self.db.store.charger_disconnected, cp_id, self._worker_id)
                if self.load_listener is not None:
                    self.load_listener.charger_changed(cp_id)
            log.info("csms.disconnected", charge_point=cp_id)

    async def _note_security_profile(self, charger: ChargerConnection) -> None:
        await self.db(self.db.store.record_security_profile, charger.id,
                      charger.security_profile)

    @property
    def _worker_id(self) -> str | None:
        return None if self.cluster is None else self.cluster.worker_id

    async def is_connected(self, charge_point_id: str) -> bool:
        """Whether the charger has an open OCPP connection to any backend process."""
        if charge_point_id in self.connected:
            return True
        if self.cluster is None:
            return False
        return await self.cluster.holder_of(charge_point_id) is not None

    async def charger_address(self, charge_point_id: str) -> str | None:
        """The address the charger last connected from (to any process of the cluster)."""
        if self.cluster is None:
            return self.last_address.get(charge_point_id)
        return await self.cluster.connected_from(charge_point_id)

    async def drop_taken(self, charge_point_id: str) -> None:
        """Another process holds the charger now: close the connection this one still
        has (it stays marked as the other's)."""
        if (charger := self.connected.get(charge_point_id)) is not None:
            log.info("csms.connection_taken_over", charge_point=charge_point_id)
            with contextlib.suppress(Exception):
                await charger._connection.close()

    async def drop_all(self) -> None:
        """Close every connection this process holds (the chargers reconnect)."""
        for charger in list(self.connected.values()):
            with contextlib.suppress(Exception):
                await charger._connection.close()

    # -- requests to a charger --

    async def call(self, charge_point_id: str, payload: Any) -> Any:
        """Send one request, over this process's connection to the charger or through the
        process holding it; raises ChargerNotConnected, ChargerCallError, TimeoutError."""
        charger = self.connected.get(charge_point_id)
        if charger is None and self.cluster is not None:
            return await self._call_elsewhere(charge_point_id, payload)
        if charger is None:
            raise ChargerNotConnected(charge_point_id)
        return await self._call_on(charger, payload)

    @staticmethod
    async def _call_on(charger: ChargerConnection, payload: Any) -> Any:
        charge_point_id = charger.id
        try:
            return await charger.call(payload, suppress=False)
        except ConnectionClosed:
            raise ChargerNotConnected(charge_point_id) from None
        except OCPPError as exc:
            raise ChargerCallError(f"{type(exc).__name__}: {exc.description}") from exc

    async def _call_elsewhere(self, charge_point_id: str, payload: Any) -> Any:
        assert self.cluster is not None
        action = type(payload).__name__
        # The holder waits response_timeout for the charger; the margin lets its answer
        # (a timeout included) travel back before this side gives up.
        answer = await self.cluster.call(
            charge_point_id, RemoteRequest(action, dataclasses.asdict(payload)),
            self.response_timeout + max(2.0, self.cluster.renew_s))
        if answer.outcome == RESULT:
            return getattr(call_result, action)(**answer.answer)
        if answer.outcome == CALL_ERROR:
            raise ChargerCallError(str(answer.answer))
        if answer.outcome == TIMEOUT:
            raise TimeoutError(str(answer.answer))
        raise ChargerNotConnected(charge_point_id)

    async def send_passed_request(self, charge_point_id: str, request: RemoteRequest
                                  ) -> RemoteAnswer:
        """Send a request another backend process passed on to a charger this one holds."""
        charger = self.connected.get(charge_point_id)
        if charger is None:
            return RemoteAnswer(NOT_CONNECTED, "not connected to this backend process")
        try:
            payload = getattr(call, request.action)(**request.payload)
        except (AttributeError, TypeError) as exc:
            return RemoteAnswer(CALL_ERROR, f"not an OCPP request: {exc}")
        try:
            result = await self._call_on(charger, payload)
        except ChargerNotConnected:
            return RemoteAnswer(NOT_CONNECTED, "not connected to this backend process")
        except ChargerCallError as exc:
            return RemoteAnswer(CALL_ERROR, str(exc))
        except TimeoutError as exc:
            return RemoteAnswer(TIMEOUT, str(exc) or "the charger did not answer in time")
        return RemoteAnswer(RESULT, dataclasses.asdict(result))

    async def remote_start_transaction(self, charge_point_id: str, id_tag: str,
                                       connector_id: int | None = None) -> str:
        result = await self.call(charge_point_id, call.RemoteStartTransaction(
            id_tag=id_tag, connector_id=connector_id))
        return str(result.status)

    async def remote_stop_transaction(self, charge_point_id: str, transaction_id: int) -> str:
        result = await self.call(charge_point_id,
                                 call.RemoteStopTransaction(transaction_id=transaction_id))
        return str(result.status)

    async def reserve_now(self, charge_point_id: str, connector_id: int, expiry: datetime,
                          id_tag: str, reservation_id: int) -> str:
        result = await self.call(charge_point_id, call.ReserveNow(
            connector_id=connector_id, expiry_date=expiry.astimezone(UTC).isoformat(),
            id_tag=id_tag, reservation_id=reservation_id))
        return str(result.status)

    async def cancel_reservation(self, charge_point_id: str, reservation_id: int) -> str:
        result = await self.call(charge_point_id,
                                 call.CancelReservation(reservation_id=reservation_id))
        return str(result.status)

    async def unlock_connector(self, charge_point_id: str, connector_id: int) -> str:
        result = await self.call(charge_point_id, call.UnlockConnector(connector_id=connector_id))
        return str(result.status)

    async def change_availability(self, charge_point_id: str, connector_id: int,
                                  availability: str) -> str:
        result = await self.call(charge_point_id, call.ChangeAvailability(
            connector_id=connector_id, type=availability))
        return str(result.status)

    async def change_configuration(self, charge_point_id: str, key: str, value: str) -> str:
        result = await self.call(charge_point_id,
                                 call.ChangeConfiguration(key=key, value=value))
        return str(result.status)

    async def get_configuration(self, charge_point_id: str, keys: Sequence[str] = ()
                                ) -> tuple[list[dict[str, Any]], list[str]]:
        """Returns (configuration keys, unknown keys)."""
        result = await self.call(charge_point_id,
                                 call.GetConfiguration(key=list(keys) if keys else None))
        return list(result.configuration_key or []), list(result.unknown_key or [])

    async def reset(self, charge_point_id: str, reset_type: str = "Soft") -> str:
        result = await self.call(charge_point_id, call.Reset(type=reset_type))
        return str(result.status)

    async def trigger_message(self, charge_point_id: str, requested_message: str,
                              connector_id: int | None = None) -> str:
        result = await self.call(charge_point_id, call.TriggerMessage(
            requested_message=requested_message, connector_id=connector_id))
        return str(result.status)

    async def clear_cache(self, charge_point_id: str) -> str:
        result = await self.call(charge_point_id, call.ClearCache())
        return str(result.status)

    async def update_firmware(self, charge_point_id: str, location: str, retrieve_date: datetime,
                              retries: int | None = None,
                              retry_interval: int | None = None) -> None:
        await self.call(charge_point_id, call.UpdateFirmware(
            location=location, retrieve_date=retrieve_date.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"), retries=retries, retry_interval=retry_interval))

    async def signed_update_firmware(self, charge_point_id: str, request_id: int,
                                     location: str, retrieve_date: datetime,
                                     signing_certificate: str, signature: str,
                                     retries: int | None = None,
                                     retry_interval: int | None = None) -> str:
        """SignedUpdateFirmware (Security Whitepaper): the charger's status."""
        result = await self.call(charge_point_id, call.SignedUpdateFirmware(
            request_id=request_id, retries=retries, retry_interval=retry_interval,
            firmware={"location": location, "retrieve_date_time": _ocpp_time(retrieve_date),
                      "signing_certificate": signing_certificate, "signature": signature}))
        return str(result.status)

    async def get_diagnostics(self, charge_point_id: str, location: str,
                              start_time: datetime | None = None,
                              stop_time: datetime | None = None, retries: int | None = None,
                              retry_interval: int | None = None) -> str | None:
        """The name of the file the charger will upload (None: it has nothing)."""
        result = await self.call(charge_point_id, call.GetDiagnostics(
            location=location, retries=retries, retry_interval=retry_interval,
            start_time=_ocpp_time(start_time), stop_time=_ocpp_time(stop_time)))
        return None if result.file_name is None else str(result.file_name)

    async def get_log(self, charge_point_id: str, log_type: str, request_id: int,
                      location: str, oldest: datetime | None = None,
                      latest: datetime | None = None, retries: int | None = None,
                      retry_interval: int | None = None) -> tuple[str, str | None]:
        """GetLog (Security Whitepaper): the charger's status and file name."""
        log_parameters = {"remote_location": location}
        if oldest is not None:
            log_parameters["oldest_timestamp"] = _ocpp_time(oldest) or ""
        if latest is not None:
            log_parameters["latest_timestamp"] = _ocpp_time(latest) or ""
        result = await self.call(charge_point_id, call.GetLog(
            log=log_parameters, log_type=log_type, request_id=request_id, retries=retries,
            retry_interval=retry_interval))
        return str(result.status), None if result.filename is None else str(result.filename)

    async def get_local_list_version(self, charge_point_id: str) -> int:
        result = await self.call(charge_point_id, call.GetLocalListVersion())
        return int(result.list_version)

    async def send_local_list(self, charge_point_id: str, list_version: int, update_type: str,
                              entries: Sequence[dict[str, Any]]) -> str:
        """``entries``: [{"id_tag": ..., "id_tag_info": {"status": ...}}, ...]."""
        result = await self.call(charge_point_id, call.SendLocalList(
            list_version=list_version, update_type=update_type,
            local_authorization_list=list(entries)))
        return str(result.status)

    async def set_charging_profile(self, charge_point_id: str, connector_id: int,
                                   profile: dict[str, Any]) -> str:
        """``profile``: csChargingProfiles with snake_case keys."""
        result = await self.call(charge_point_id, call.SetChargingProfile(
            connector_id=connector_id, cs_charging_profiles=profile))
        return str(result.status)

    async def clear_charging_profile(self, charge_point_id: str, profile_id: int | None = None,
                                     connector_id: int | None = None,
                                     purpose: str | None = None) -> str:
        result = await self.call(charge_point_id, call.ClearChargingProfile(
            id=profile_id, connector_id=connector_id, charging_profile_purpose=purpose))
        return str(result.status)

    async def get_composite_schedule(self, charge_point_id: str, connector_id: int,
                                     duration: int, unit: str | None = None) -> Any:
        """The charger's answer (status, schedule_start, charging_schedule)."""
        return await self.call(charge_point_id, call.GetCompositeSchedule(
            connector_id=connector_id, duration=duration, charging_rate_unit=unit))

    async def certificate_signed(self, charge_point_id: str, certificate_chain: str) -> str:
        result = await self.call(charge_point_id, call.CertificateSigned(
            certificate_chain=certificate_chain))
        return str(result.status)

    async def install_certificate(self, charge_point_id: str, certificate_type: str,
                                  certificate: str) -> str:
        result = await self.call(charge_point_id, call.InstallCertificate(
            certificate_type=certificate_type, certificate=certificate))
        return str(result.status)

    async def delete_certificate(self, charge_point_id: str,
                                 hash_data: dict[str, str]) -> str:
        """``hash_data``: CertificateHashData with snake_case keys."""
        result = await self.call(charge_point_id, call.DeleteCertificate(
            certificate_hash_data=hash_data))
        return str(result.status)

    async def get_installed_certificate_ids(self, charge_point_id: str, certificate_type: str
                                            ) -> tuple[str, list[dict[str, str]]]:
        """The charger's status and the CertificateHashData (snake_case) of its roots."""
        result = await self.call(charge_point_id, call.GetInstalledCertificateIds(
            certificate_type=certificate_type))
        return str(result.status), [dict(entry) for entry in result.certificate_hash_data or []]

    async def extended_trigger_message(self, charge_point_id: str, requested_message: str,
                                       connector_id: int | None = None) -> str:
        result = await self.call(charge_point_id, call.ExtendedTriggerMessage(
            requested_message=requested_message, connector_id=connector_id))
        return str(result.status)

    async def disconnect(self, charge_point_id: str) -> None:
        charger = self.connected.get(charge_point_id)
        if charger is not None:
            with contextlib.suppress(Exception):
                await charger._connection.close()
