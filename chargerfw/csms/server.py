"""Runs the whole backend in one asyncio loop: OCPP WebSocket server, OCPI API (uvicorn),
the admin API (uvicorn, on its own port when one is given), push worker and reservation
expiry.

``running_csms(settings)`` is an async context manager that a test (or the CLI) enters to get a
live backend on the requested ports (0 = any free port) and learns the bound ports from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn

from chargerfw.csms.admin_api import AdminContext, create_admin_app
from chargerfw.csms.authorization import Authorizer
from chargerfw.csms.background import BackgroundLoop, DueWorkLoop
from chargerfw.csms.cluster import Cluster, LeaderJob, is_postgresql
from chargerfw.csms.db import create_db_engine, upgrade_database
from chargerfw.csms.file_server import (
    DEFAULT_MAX_UPLOAD_BYTES,
    DEFAULT_TOKEN_VALIDITY,
    FileServer,
    FileSettings,
)
from chargerfw.csms.fleet_ca import FleetCa
from chargerfw.csms.login_limits import LoginLimits
from chargerfw.csms.ocpi.api import create_app
from chargerfw.csms.ocpi.chargingprofiles import DEFAULT_MIN_INTERVAL_S, ChargingProfileHandler
from chargerfw.csms.ocpi.commands import DEFAULT_MAX_RESERVATION, CommandHandler
from chargerfw.csms.ocpi.common import OcpiContext
from chargerfw.csms.ocpi.limits import RequestLimits
from chargerfw.csms.ocpi.partner_sync import PartnerSync
from chargerfw.csms.ocpi.push import PushWorker
from chargerfw.csms.ocpp_server import OcppServer
from chargerfw.csms.operator_commands import OperatorCommandRunner
from chargerfw.csms.paths import default_data_dir
from chargerfw.csms.site_balancer import SiteBalancer
from chargerfw.csms.store import AsyncStore, CpoIdentity, Store
from chargerfw.csms.tls import TlsFiles, plain_exposed_hosts, server_context
from chargerfw.csms.urlpolicy import UrlPolicy, guarded_client
from chargerfw.logs import get_logger

log = get_logger(__name__)


class EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the process owner decides when to stop
    (``serve_forever`` installs SIGINT/SIGTERM handlers; tests just leave the context)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class CsmsSettings:
    """Everything ``chargerfw csms serve`` can be told."""

    db: str = "csms.sqlite3"
    host: str = "127.0.0.1"
    ocpp_port: int = 9000
    api_port: int = 9001
    auto_register: bool = False
    public_url: str | None = None  # how partners reach the API; default http://host:port
    cpo: CpoIdentity = CpoIdentity()
    heartbeat_interval: int = 300
    ocpp_response_timeout_s: float = 30.0
    command_timeout_s: float = 30.0
    http_timeout_s: float = 10.0
    realtime_auth_timeout_s: float = 5.0
    push_retry_base_s: float = 2.0
    push_max_attempts: int = 50
    push_poll_s: float = 1.0
    # How often CDRs left due by another backend process (or a crash) are looked for; this
    # process's own stops wake the CDR worker at once.
    cdr_poll_s: float = 1.0
    reservation_sweep_s: float = 5.0
    # The shortest time between two changes of one session's charging profile by an eMSP.
    profile_min_interval_s: float = DEFAULT_MIN_INTERVAL_S
    # The furthest ahead an eMSP's RESERVE_NOW may expire.
    max_reservation_s: float = DEFAULT_MAX_RESERVATION.total_seconds()
    # A charger silent this long (disconnected, or a heartbeat missed by this much) shows
    # its EVSEs UNKNOWN to partners until it returns; checked every offline_sweep_s.
    offline_grace_s: float = 300.0
    offline_sweep_s: float = 15.0
    # Networks outgoing calls may reach although not public (CIDR; e.g. 127.0.0.0/8 on a
    # bench where the partners run on loopback).
    outbound_allowed_networks: tuple[str, ...] = ()
    request_limits: RequestLimits = RequestLimits()
    login_limits: LoginLimits = LoginLimits()
    # Pulls from partners (0 = off): eMSPs' token changes, and hubs' party lists.
    token_pull_interval_s: float = 6 * 3600.0
    hub_pull_interval_s: float = 3600.0
    # How often pushes of local lists asked for through the database are looked for.
    operator_command_poll_s: float = 1.0
    # The file server chargers download firmware from and upload diagnostics to (None: none;
    # 0: any free port); files_url is how chargers reach it (default http://host:port).
    files_port: int | None = None
    files_url: str | None = None
    data_dir: str | None = None  # default: beside a SQLite database, see default_data_dir
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    file_url_valid_s: float = DEFAULT_TOKEN_VALIDITY.total_seconds()
    # The admin API (None: off); loopback unless told otherwise.
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    # The fleet CA that signs chargers' CSRs (None: SignCertificate is Rejected), the O their
    # CSRs must carry (None: any), and how long a certificate it signs is valid.
    ca_dir: str | None = None
    cpo_name: str | None = None
    charger_certificate_days: int = 365
    # A plain ws OCPP port beside the wss one, for chargers still on security profile 0 or 1
    # (until `cp security-migrate` raises them); plain, so loopback unless allow_plain.
    plain_ocpp_port: int | None = None
    # TLS on every port (wss for OCPP, https for the rest); None: plain, which only loopback
    # addresses get unless allow_plain (see chargerfw.csms.tls.plain_exposed_hosts).
    tls: TlsFiles | None = None
    allow_plain: bool = False
    # Several backend processes on one PostgreSQL database (always on with PostgreSQL): how
    # long a process's lease lasts without renewal, and how often it renews it (also how
    # soon another process takes over the fleet's once-only work from a dead leader).
    worker_lease_s: float = 10.0
    worker_renew_s: float = 2.0
    # Share the listening ports with this machine's other backend processes (SO_REUSEPORT;
    # `serve --workers`): the kernel spreads new connections over them.
    reuse_port: bool = False


@dataclass
class RunningCsms:
    """A live backend: its ports and parts (tests reach into them)."""

    ocpp_port: int
    api_port: int
    host: str
    store: Store
    db: AsyncStore
    ocpp: OcppServer
    pusher: PushWorker
    sync: PartnerSync
    api_server: uvicorn.Server
    api_task: asyncio.Task[None]
    balancer: SiteBalancer
    files: FileServer | None = None
    files_port: int | None = None
    admin_port: int | None = None
    admin_host: str = "127.0.0.1"
    tls: bool = False
    # Addresses other than loopback served without TLS (allowed explicitly).
    plain_hosts: tuple[str, ...] = ()
    plain_ocpp_port: int | None = None
    cluster: Cluster | None = None  # with PostgreSQL

    @property
    def plain_ocpp_url(self) -> str | None:
        if self.plain_ocpp_port is None:
            return None
        return f"ws://{self.host}:{self.plain_ocpp_port}/ocpp"

    @property
    def ocpp_url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.ocpp_port}/ocpp"

    @property
    def api_url(self) -> str:
        return f"{_http_scheme(self.tls)}://{self.host}:{self.api_port}"

    @property
    def admin_url(self) -> str | None:
        if self.admin_port is None:
            return None
        return f"{_http_scheme(self.tls)}://{self.admin_host}:{self.admin_port}"

    async def wait_closed(self) -> None:
        """Wait until the API server stops (SIGINT/SIGTERM in ``serve``)."""
        await self.api_task


def _http_scheme(tls: bool) -> str:
    return "https" if tls else "http"


async def _sweep_reservations(db: AsyncStore, every_s: float) -> None:
    while True:
        await asyncio.sleep(every_s)
        try:
            expired = await db(db.store.expire_reservations)
            if expired:
                log.info("csms.reservations_expired", count=expired)
        except Exception:
            log.exception("csms.reservation_sweep_failed")


# How often the per-party count rows of the session and CDR listings are folded: between
# folds, a listing's total sums the rows written since (a few hundred at a busy fleet's pace).
OWNER_COUNT_FOLD_S = 5.0
# Middle-generation collections between full ones (Python's default: 10).
FULL_GC_AFTER_COLLECTIONS = 1000


async def _fold_owner_counts(db: AsyncStore) -> None:
    # At once first: a database filled while the backend was down may hold many rows.
    while True:
        try:
            await db.background(db.store.fold_owner_counts)
        except Exception:
            log.exception("csms.owner_count_fold_failed")
        await asyncio.sleep(OWNER_COUNT_FOLD_S)


async def _sweep_offline(db: AsyncStore, settings: CsmsSettings,
                        on_change: Callable[[], None],
                        on_transaction_end: Callable[[], None]) -> None:
    grace = timedelta(seconds=settings.offline_grace_s)
    heartbeat = timedelta(seconds=settings.heartbeat_interval)
    while True:
        await asyncio.sleep(settings.offline_sweep_s)
        try:
            changes = await db(db.store.sweep_offline, grace, heartbeat)
            if changes:
                log.info("csms.chargers_offline", evses=[c.evse_uid for c in changes])
                on_change()
            if closed := await db(db.store.close_orphans_due):
                log.info("csms.orphan_transactions_closed", count=closed)
                on_transaction_end()
        except Exception:
            log.exception("csms.offline_sweep_failed")


def _loop_job(name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> LeaderJob:
    background = BackgroundLoop(name, loop)
    return LeaderJob(name, background.start, background.stop)


def _listening_socket(stack: contextlib.AsyncExitStack, host: str, port: int,
                      reuse_port: bool = False) -> socket.socket:
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it an answer written as headers then body waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    stack.callback(sock.close)
    sock.bind((host, port))
    return sock


async def _serve_app(stack: contextlib.AsyncExitStack, app: Any, sock: socket.socket,
                     name: str, tls: ssl.SSLContext | None = None
                     ) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Serve ``app`` on ``sock`` (https with ``tls``) until the stack closes; returns once
    it accepts requests."""
    # A request stuck on a slow partner or database must not hold up a shutdown forever.
    server = EmbeddedUvicorn(uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=5,
        ssl_context_factory=None if tls is None else lambda _config, _default: tls))
    task = asyncio.create_task(server.serve(sockets=[sock]), name=name)

    async def stop() -> None:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task

    stack.push_async_callback(stop)
    while not server.started:
        if task.done():
            task.result()  # raises why it could not start
        await asyncio.sleep(0.01)
    return server, task


@contextlib.asynccontextmanager
async def running_csms(settings: CsmsSettings) -> AsyncIterator[RunningCsms]:
    """Start the backend; stop everything it started on exit.

    Raises TlsSetupError before anything listens when a certificate file is unusable or a
    port would be plain on an address other than loopback without ``allow_plain``.
    """
    hosts = [settings.host] + ([settings.admin_host] if settings.admin_port is not None else [])
    plain_hosts = plain_exposed_hosts(hosts, tls=settings.tls is not None,
                                      allow_plain=settings.allow_plain)
    if settings.plain_ocpp_port is not None and settings.tls is not None:
        plain_hosts += plain_exposed_hosts([settings.host], tls=False,
                                           allow_plain=settings.allow_plain)
    if plain_hosts:
        log.warning("csms.plain_on_network", hosts=list(plain_hosts))
    ocpp_tls = http_tls = None
    if settings.tls is not None:
        ocpp_tls = server_context(settings.tls, client_certificates=True)
        http_tls = server_context(settings.tls)
    scheme = _http_scheme(settings.tls is not None)
    engine = create_db_engine(settings.db)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(engine.dispose)
        await asyncio.to_thread(upgrade_database, engine)
        store = Store(engine, settings.cpo)
        cluster: Cluster | None = None
        if is_postgresql(engine):
            # Other processes may be serving chargers from this database: only those of
            # processes whose lease ran out are disconnected (by the leader).
            cluster = Cluster(engine, lease_s=settings.worker_lease_s,
                              renew_s=settings.worker_renew_s)
            await cluster.start()
            stack.push_async_callback(cluster.close)
        else:
            await asyncio.to_thread(store.reset_connections)
        db = AsyncStore(store)
        stack.callback(db.close)
        policy = UrlPolicy.allowing(settings.outbound_allowed_networks)
        http = await stack.enter_async_context(guarded_client(policy, settings.http_timeout_s))
        pusher = PushWorker(db, http, retry_base_s=settings.push_retry_base_s,
                            max_attempts=settings.push_max_attempts, poll_s=settings.push_poll_s)
        # Sessions' final state and CDRs, built after their stop was answered.
        cdr_builder = DueWorkLoop("cdr-builder", lambda: db.background(store.build_due_cdrs),
                                  settings.cdr_poll_s, after_work=pusher.wake)
        authorizer = Authorizer(db, http, realtime_timeout_s=settings.realtime_auth_timeout_s)
        fleet_ca = None if settings.ca_dir is None else FleetCa.load(
            Path(settings.ca_dir), cpo_name=settings.cpo_name,
            validity=timedelta(days=settings.charger_certificate_days))
        ocpp = OcppServer(db, authorizer, auto_register=settings.auto_register,
                          heartbeat_interval=settings.heartbeat_interval,
                          response_timeout=settings.ocpp_response_timeout_s,
                          on_change=pusher.wake, on_transaction_end=cdr_builder.wake,
                          login_limits=settings.login_limits,
                          fleet_ca=fleet_ca, cluster=cluster)
        balancer = SiteBalancer(db, ocpp) if cluster is None \
            else SiteBalancer(db, ocpp, cluster.exclusive)
        reuse = settings.reuse_port
        ocpp_port = await ocpp.start(settings.host, settings.ocpp_port, ocpp_tls, reuse)
        plain_ocpp_port = None
        if settings.plain_ocpp_port is not None and ocpp_tls is not None:
            plain_ocpp_port = await ocpp.start(settings.host, settings.plain_ocpp_port,
                                               reuse_port=reuse)
        stack.push_async_callback(ocpp.close)
        stack.push_async_callback(balancer.close)

        sock = _listening_socket(stack, settings.host, settings.api_port, reuse)
        api_port = int(sock.getsockname()[1])
        commands = CommandHandler(db, ocpp, on_result=pusher.wake,
                                  timeout_s=settings.command_timeout_s,
                                  max_reservation=timedelta(seconds=settings.max_reservation_s))
        stack.push_async_callback(commands.close)
        profiles = ChargingProfileHandler(db, ocpp, balancer, on_result=pusher.wake,
                                          timeout_s=settings.command_timeout_s,
                                          min_interval_s=settings.profile_min_interval_s)
        stack.push_async_callback(profiles.close)
        sync = PartnerSync(db, http, token_interval_s=settings.token_pull_interval_s,
                           hub_interval_s=settings.hub_pull_interval_s,
                           on_token_change=authorizer.forget)
        ctx = OcpiContext(db=db, http=http, commands=commands,
                          base_url=(settings.public_url or
                                    f"{scheme}://{settings.host}:{api_port}").rstrip("/"),
                          business_name=settings.cpo.name, on_change=pusher.wake,
                          on_token_change=authorizer.forget,
                          on_partner_registered=sync.partner_registered, url_policy=policy,
                          limits=settings.request_limits, charging_profiles=profiles)
        api_server, api_task = await _serve_app(stack, create_app(ctx), sock, "ocpi-api",
                                                http_tls)

        files: FileServer | None = None
        files_port: int | None = None
        if settings.files_port is not None:
            files_sock = _listening_socket(stack, settings.host, settings.files_port, reuse)
            files_port = int(files_sock.getsockname()[1])
            files = FileServer(db, ocpp, FileSettings(
                data_dir=Path(settings.data_dir) if settings.data_dir
                else default_data_dir(settings.db),
                base_url=settings.files_url or f"{scheme}://{settings.host}:{files_port}",
                token_valid_for=timedelta(seconds=settings.file_url_valid_s),
                max_upload_bytes=settings.max_upload_bytes))
            await _serve_app(stack, files.app(), files_sock, "file-server", http_tls)

        runner = OperatorCommandRunner(db, ocpp, files)
        admin_port = None
        if settings.admin_port is not None:
            admin_sock = _listening_socket(stack, settings.admin_host, settings.admin_port,
                                           reuse)
            admin_port = int(admin_sock.getsockname()[1])
            admin_ctx = AdminContext(db=db, runner=runner, limits=settings.request_limits)
            admin_server, _ = await _serve_app(stack, create_admin_app(admin_ctx), admin_sock,
                                               "admin-api", http_tls)
            admin_ctx.stopping = lambda: bool(admin_server.should_exit)

        # Work done once for the fleet: by the leader when processes share the database.
        fleet_jobs = [
            LeaderJob("ocpi-push", pusher.start, pusher.stop),
            LeaderJob("cdr-builder", cdr_builder.start, cdr_builder.stop),
            LeaderJob("partner-sync", sync.start, sync.stop),
            _loop_job("reservation-sweep", lambda: _sweep_reservations(
                db, settings.reservation_sweep_s)),
            _loop_job("offline-sweep", lambda: _sweep_offline(db, settings, pusher.wake,
                                                              cdr_builder.wake)),
            _loop_job("owner-count-fold", lambda: _fold_owner_counts(db)),
            _loop_job("operator-commands", lambda: runner.serve_requests(
                settings.operator_command_poll_s))]
        if cluster is not None:
            for job in fleet_jobs:
                cluster.lead(job)
            cluster.campaign()
            stack.push_async_callback(cluster.resign)
        else:
            for job in fleet_jobs:
                job.start()
                stack.push_async_callback(job.stop)
        log.info("csms.started", ocpp_port=ocpp_port, api_port=api_port, files_port=files_port,
                 admin_port=admin_port, tls=settings.tls is not None,
                 client_certificates=ocpp_tls is not None
                 and ocpp_tls.verify_mode != ssl.CERT_NONE)
        yield RunningCsms(ocpp_port, api_port, settings.host, store, db, ocpp, pusher, sync,
                          api_server, api_task, balancer, files, files_port, admin_port,
                          settings.admin_host, settings.tls is not None, plain_hosts,
                          plain_ocpp_port, cluster)


async def serve_forever(settings: CsmsSettings,
                        on_ready: Callable[[RunningCsms], None] | None = None) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly.

    The signals are handled from the start: one that arrives while the backend is still
    starting (it may already hold a worker lease) lets the start finish and then shuts down
    as cleanly as one that arrives later."""
    # A full collection stops every thread for as long as it walks the heap (200-300 ms with
    # 1,000 chargers connected): held off to one per ~1,000 young collections, it no longer
    # lands among ordinary traffic; garbage in cycles waits that much longer.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_GC_AFTER_COLLECTIONS)
    loop = asyncio.get_running_loop()
    stop_requested = False
    started: list[RunningCsms] = []

    def request_stop() -> None:
        nonlocal stop_requested
        stop_requested = True
        for csms in started:
            csms.api_server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, request_stop)
    try:
        async with running_csms(settings) as csms:
            started.append(csms)
            if stop_requested:
                log.info("csms.stopped_while_starting")
                return
            if on_ready is not None:
                on_ready(csms)
            await csms.wait_closed()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
