"""Security profiles 0-3 on loopback with certificates the test makes: each profile connects;
a server certificate from another CA, expired, not yet valid or for another host, old TLS and
no common cipher suite are refused with their security event (rate-limited); a key file others
may read is refused; SecurityProfile raised 1 -> 2 -> 3 remotely, a raise that cannot connect
falls back; AuthorizationKey refused over ws and kept with its fallback until the new key works."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import logging
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cert_factory import SERVER_AUTH, Issued, client_certificate, issue, server_certificate
from fakes import wait_until
from ocpp_support import running, running_client
from ocpp_testcsms import TestCsms

from chargerfw.config import StationConfig
from chargerfw.config.station import SecuritySection, parse_config
from chargerfw.logs import capture_logs, render_line
from chargerfw.ocpp.connection import Backoff, ConnectionSetupError, OcppConnection
from chargerfw.ocpp.credentials import AuthorizationKeyFile
from chargerfw.ocpp.security_log import (
    CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE,
    FAILED_TO_AUTHENTICATE,
    INVALID_CENTRAL_SYSTEM_CERTIFICATE,
    INVALID_TLS_CIPHER_SUITE,
    INVALID_TLS_VERSION,
    SECURITY_RECONFIGURED,
)
from chargerfw.ocpp.security_profile import (
    TRIAL_KEY,
    SecurityProfiles,
    authorization_key_applier,
)
from chargerfw.ocpp.tls import SecurityEventLimiter, provision_ca_file, tls_context
from chargerfw.ocpp.v16.client import OcppClient, client_from_config
from chargerfw.ocppj import library_log
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(60)

PASSWORD = "profile-password-1234"
NEW_KEY = "the-new-authorization-key-5678"


@pytest.fixture(scope="module")
def pki() -> dict[str, Issued]:
    now = datetime.now(UTC)
    root = issue("Central System Root", ca=True)
    other = issue("Someone Else's Root", ca=True)
    stations = issue("Station CA", ca=True)
    return {
        "root": root,
        "server": server_certificate(root, "localhost"),
        "foreign": server_certificate(other, "localhost"),
        "expired": server_certificate(root, "localhost", not_before=now - timedelta(days=30),
                                      not_after=now - timedelta(days=1)),
        "not_yet_valid": server_certificate(root, "localhost", not_before=now + timedelta(days=1),
                                            not_after=now + timedelta(days=30)),
        # Valid, but for another host: no 127.0.0.1 in it.
        "other_host": issue("backend.example", issuer=root, eku=[SERVER_AUTH],
                            dns_names=["backend.example"]),
        "stations": stations,
        "cp1": client_certificate(stations, "CP1"),
        "cp2": client_certificate(stations, "CP2"),
    }


def install(security: SecuritySection, pki: dict[str, Issued], *, root: bool = True,
            client: str | None = "cp1") -> SecuritySection:
    """The station's certificate store: the root and the station's certificate and key."""
    if root:
        security.central_system_roots_dir.mkdir(parents=True, exist_ok=True)
        (security.central_system_roots_dir / "root.pem").write_text(pki["root"].pem)
    if client is not None:
        security.charge_point_certificate.parent.mkdir(parents=True, exist_ok=True)
        security.charge_point_certificate.write_text(pki[client].pem)
        security.charge_point_key.write_text(pki[client].key_pem)
        security.charge_point_key.chmod(0o600)
    return security


def server_context(tmp_path: Path, certificate: Issued, client_ca: Issued | None = None,
                   ) -> ssl.SSLContext:
    """A backend's TLS context; with ``client_ca`` it asks for a client certificate."""
    cert, key = certificate.write(tmp_path / "server", "server")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_OPTIONAL
        context.load_verify_locations(cadata=client_ca.pem)
    return context


def events(store: Store, event_type: str) -> list[str]:
    return [e.tech_info or "" for e in store.security_events() if e.type == event_type]


# -- each profile connects -------------------------------------------------------------------

@pytest.mark.parametrize("profile", [0, 1, 2, 3])
async def test_each_profile_connects(tmp_path, pki, profile):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    tls = profile >= 2
    context = server_context(tmp_path, pki["server"],
                             client_ca=pki["stations"] if profile == 3 else None) if tls else None
    async with TestCsms(password=PASSWORD if profile in (1, 2) else None,
                        ssl_context=context) as csms, \
            running_client(tmp_path, csms.url, profile=profile,
                           password=PASSWORD if profile in (1, 2) else None,
                           security=security) as client:
        await wait_until(lambda: client.online)
        assert csms.url.startswith("wss://" if tls else "ws://")
        assert csms.of("BootNotification")
        basic = csms.authorizations[-1]
        assert (basic is not None) == (profile in (1, 2))  # no Basic auth on profile 3
        assert csms.client_certificates == (["CP1"] if profile == 3 else [])


def test_tls_context_offers_tls12_with_the_whitepapers_suites_only(tmp_path, pki):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    context = tls_context(3, security.central_system_roots_dir, security.charge_point_certificate,
                          security.charge_point_key)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    tls12 = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
                     "AES128-GCM-SHA256", "AES256-GCM-SHA384"}


def test_profile3_refuses_a_key_file_others_may_read(tmp_path, pki):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    security.charge_point_key.chmod(0o640)
    connection = OcppConnection("wss://127.0.0.1:1/ocpp", "CP1", security_profile=3,
                                security=security)
    with pytest.raises(ConnectionSetupError, match=r"mode 0640 .*chmod 0600"):
        connection.connect_kwargs()
    security.charge_point_key.chmod(0o600)
    assert connection.connect_kwargs()["ssl"] is not None


# -- refused servers, each with its event ----------------------------------------------------

@pytest.mark.parametrize("certificate, why", [
    ("foreign", "unable to get local issuer certificate"),
    ("expired", "certificate has expired"),
    ("not_yet_valid", "certificate is not yet valid"),
])
async def test_refused_server_certificates_are_security_events(tmp_path, pki, certificate, why):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    async with TestCsms(password=PASSWORD,
                        ssl_context=server_context(tmp_path, pki[certificate])) as csms, \
            running_client(tmp_path, csms.url, profile=2, password=PASSWORD,
                           security=security) as client:
        await wait_until(lambda: client.connection.health.failed_attempts >= 4)
        assert csms.received == [] and not client.online
        assert "CERTIFICATE_VERIFY_FAILED" in (client.connection.health.last_error or "")
        # Several refusals, one event: a reconnect loop does not flood the security log.
        (info,) = events(client.store, INVALID_CENTRAL_SYSTEM_CERTIFICATE)
        assert why in info


async def test_a_host_name_mismatch_is_refused(tmp_path, pki):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    # The certificate is valid for backend.example; the station asks for localhost.
    async with TestCsms(password=PASSWORD,
                        ssl_context=server_context(tmp_path, pki["other_host"])) as csms:
        url = f"wss://localhost:{csms.port}/ocpp"
        async with running_client(tmp_path, url, profile=2, password=PASSWORD,
                                  security=security) as client:
            # A valid certificate for another name: the backend failed to authenticate.
            await wait_until(lambda: events(client.store, CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE))
            assert "mismatch" in events(client.store, CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE)[0]
            assert events(client.store, INVALID_CENTRAL_SYSTEM_CERTIFICATE) == []
            assert csms.received == []


async def test_an_ip_address_mismatch_is_the_backend_failing_to_authenticate(tmp_path, pki):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    async with TestCsms(password=PASSWORD,
                        ssl_context=server_context(tmp_path, pki["other_host"])) as csms, \
            running_client(tmp_path, csms.url, profile=2, password=PASSWORD,
                           security=security) as client:
        await wait_until(lambda: events(client.store, CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE))
        assert "IP address mismatch" in events(client.store,
                                               CENTRAL_SYSTEM_FAILED_TO_AUTHENTICATE)[0]
        assert csms.received == [] and not client.online


async def test_a_client_certificate_for_another_id_is_refused(tmp_path, pki):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki, client="cp2")
    context = server_context(tmp_path, pki["server"], client_ca=pki["stations"])
    async with TestCsms(ssl_context=context) as csms, \
            running_client(tmp_path, csms.url, profile=3, security=security) as client:
        await wait_until(lambda: client.connection.health.failed_attempts >= 2)
        assert "403" in (client.connection.health.last_error or "")
        assert csms.client_certificates == [] and not client.online
        assert len(events(client.store, FAILED_TO_AUTHENTICATE)) == 1


@contextlib.contextmanager
def blocking_tls_server(context: ssl.SSLContext) -> Iterator[int]:
    """A loopback TLS server that only handshakes (and so sends the TLS alerts an asyncio
    server drops): the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stopping = threading.Event()

    def serve() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                context.wrap_socket(conn, server_side=True).close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stopping.set()
        thread.join()
        listener.close()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLSv1_1, on purpose
@pytest.mark.parametrize("offer, event", [("tls1.1", INVALID_TLS_VERSION),
                                          ("chacha20 only", INVALID_TLS_CIPHER_SUITE)])
async def test_old_tls_or_no_common_suite_are_security_events(tmp_path, pki, offer, event):
    security = install(SecuritySection(certificates_dir=tmp_path / "certs"), pki)
    context = server_context(tmp_path, pki["server"])
    context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    if offer == "tls1.1":
        context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    else:
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE-ECDSA-CHACHA20-POLY1305")
    with blocking_tls_server(context) as port:
        async with running_client(tmp_path, f"wss://127.0.0.1:{port}/ocpp", profile=2,
                                  password=PASSWORD, security=security) as client:
            await wait_until(lambda: client.connection.health.failed_attempts >= 3)
            assert len(events(client.store, event)) == 1


def test_security_event_limiter_passes_one_per_interval_and_counts_the_rest():
    now = [0.0]
    recorded: list[tuple[str, str]] = []
    limiter = SecurityEventLimiter(lambda t, i: recorded.append((t, i)), interval_s=600,
                                   clock=lambda: now[0])
    for _ in range(5):
        limiter(INVALID_TLS_VERSION, "old")
    limiter(INVALID_TLS_CIPHER_SUITE, "suite")  # another type has its own budget
    now[0] = 599.0
    limiter(INVALID_TLS_VERSION, "old")
    now[0] = 600.0
    limiter(INVALID_TLS_VERSION, "old")
    assert recorded == [(INVALID_TLS_VERSION, "old"), (INVALID_TLS_CIPHER_SUITE, "suite"),
                        (INVALID_TLS_VERSION, "old (and 5 more since the last report)")]


def test_ca_file_is_installed_as_a_root_when_none_is(tmp_path, pki):
    security = SecuritySection(certificates_dir=tmp_path / "certs")
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(pki["root"].pem)
    assert provision_ca_file(ca_file, security.central_system_roots_dir)
    installed = list(security.central_system_roots_dir.iterdir())
    assert [p.read_text() for p in installed] == [pki["root"].pem]
    ca_file.write_text(pki["stations"].pem)  # a root is installed: the store wins
    assert not provision_ca_file(ca_file, security.central_system_roots_dir)
    ca_file.write_text("not a certificate")
    with pytest.raises(ValueError, match="not a readable PEM certificate"):
        provision_ca_file(ca_file, tmp_path / "empty")


# -- raising the profile ---------------------------------------------------------------------

def station_config(tmp_path: Path, url: str, secure_url: str, profile: int = 1) -> StationConfig:
    return parse_config({
        "station": {"id": "CP1"},
        "connector": [{"id": 1, "meter": {"model": "eastron-sdm630-v2", "transport": "tcp"},
                       "contactor": {"pin": 17}, "pilot": {"pwm_pin": 18}}],
        "ocpp": {"url": url, "secure_url": secure_url, "security_profile": profile,
                 "password": PASSWORD},
        "storage": {"path": str(tmp_path / "state.db")},
        "security": {"certificates_dir": str(tmp_path / "certs")},
    })


@contextlib.asynccontextmanager
async def station_client(config: StationConfig) -> AsyncIterator[OcppClient]:
    store = Store(config.storage.path)
    client = client_from_config(config, store)
    assert isinstance(client.connection, OcppConnection)
    client.connection.backoff = Backoff(initial_s=0.05, maximum_s=0.2, floor_s=0.01)
    async with running(client):
        yield client


CALL_IDS = itertools.count()


async def change(csms: TestCsms, key: str, value: str) -> str:
    unique_id = f"change-{next(CALL_IDS)}"  # a repeated uniqueId would be a replay
    reply = await csms.send_raw(json.dumps([2, unique_id, "ChangeConfiguration",
                                            {"key": key, "value": value}]), unique_id)
    return str(reply[2]["status"])


async def test_profile_raised_1_to_2_to_3_and_never_lowered(tmp_path, pki):
    context = server_context(tmp_path, pki["server"], client_ca=pki["stations"])
    async with TestCsms(password=PASSWORD) as plain, \
            TestCsms(password=PASSWORD, ssl_context=context) as secure:
        config = station_config(tmp_path, plain.url, secure.url)
        async with station_client(config) as client:
            await wait_until(lambda: client.online)
            # No root installed yet: profile 2 cannot be set up.
            assert await change(plain, "SecurityProfile", "2") == "Rejected"
            install(config.security, pki, client=None)
            assert await change(plain, "SecurityProfile", "3") == "Rejected"  # no certificate
            assert await change(plain, "SecurityProfile", "2") == "Accepted"
            await wait_until(lambda: client.online and secure.of("BootNotification"))
            assert client.store.config_get("SecurityProfile") == "2"
            assert secure.authorizations[-1] is not None and secure.client_certificates == []

            install(config.security, pki, root=False)
            assert await change(secure, "SecurityProfile", "3") == "Accepted"
            await wait_until(lambda: secure.client_certificates == ["CP1"] and client.online)
            assert client.store.config_get("SecurityProfile") == "3"
            assert await change(secure, "SecurityProfile", "2") == "Rejected"
            assert events(client.store, SECURITY_RECONFIGURED) == [
                "SecurityProfile raised from 1 to 2", "SecurityProfile raised from 2 to 3"]
        # A restart uses the raised profile.
        async with station_client(config) as client:
            await wait_until(lambda: client.online and len(secure.client_certificates) == 2)
            assert client.security_profiles is not None
            assert client.security_profiles.current() == 3


async def test_a_raise_that_cannot_connect_falls_back_and_is_reported(tmp_path, pki):
    # The wss backend shows a certificate the station's root did not sign.
    async with TestCsms(password=PASSWORD) as plain, \
            TestCsms(password=PASSWORD,
                     ssl_context=server_context(tmp_path, pki["foreign"])) as secure:
        config = station_config(tmp_path, plain.url, secure.url)
        install(config.security, pki, client=None)
        async with station_client(config) as client:
            await wait_until(lambda: client.online)
            assert await change(plain, "SecurityProfile", "2") == "Accepted"
            await wait_until(lambda: len(plain.of("BootNotification")) == 2 and client.online,
                             timeout=15)
            assert secure.received == []
            assert client.security_profiles is not None
            assert client.security_profiles.current() == 1
            assert client.store.config_get("SecurityProfile") is None
            assert client.store.config_get(TRIAL_KEY) == ""
            (fallback,) = events(client.store, SECURITY_RECONFIGURED)
            assert fallback.startswith("SecurityProfile 2 failed to connect 3 times")
            assert fallback.endswith("kept 1")
            assert events(client.store, INVALID_CENTRAL_SYSTEM_CERTIFICATE)


def test_a_restart_during_a_trial_keeps_the_previous_profile(store):
    recorded: list[tuple[str, str]] = []
    profiles = SecurityProfiles(store, 1, problem=lambda profile: None,
                                record_event=lambda t, i: recorded.append((t, i)))
    assert profiles.apply("2")[0].value == "Accepted" and profiles.current() == 2
    # Power cut: the next start finds the trial's mark, not the profile on trial.
    again = SecurityProfiles(store, 1, problem=lambda profile: None,
                             record_event=lambda t, i: recorded.append((t, i)))
    assert again.current() == 1 and store.config_get(TRIAL_KEY) == ""
    assert recorded == [(SECURITY_RECONFIGURED,
                         "SecurityProfile 2 was on trial when the station restarted; kept 1")]


# -- AuthorizationKey ------------------------------------------------------------------------

async def test_authorization_key_is_refused_over_plain_ws(tmp_path, pki):
    async with TestCsms(password=PASSWORD) as plain:
        config = station_config(tmp_path, plain.url, "wss://127.0.0.1:1/ocpp")
        async with station_client(config) as client:
            await wait_until(lambda: client.online)
            assert await change(plain, "AuthorizationKey", NEW_KEY) == "Rejected"
            assert not config.security.authorization_key_file.exists()
            assert client.store.config_get("AuthorizationKey") is None
            # A technician's change (the control socket) does not cross the network.
            assert client.keys.change("AuthorizationKey", NEW_KEY)[0].value == "Accepted"
            assert json.loads(config.security.authorization_key_file.read_text())["key"] == NEW_KEY


async def test_authorization_key_keeps_its_fallback_until_the_new_one_worked(tmp_path, pki):
    async with TestCsms(password=PASSWORD,
                        ssl_context=server_context(tmp_path, pki["server"])) as secure:
        config = station_config(tmp_path, secure.url, secure.url, profile=2)
        install(config.security, pki, client=None)
        key_file = config.security.authorization_key_file
        async with station_client(config) as client:
            await wait_until(lambda: client.online)
            assert await change(secure, "AuthorizationKey", NEW_KEY) == "Accepted"
            assert oct(key_file.stat().st_mode & 0o777) == "0o600"
            assert client.store.config_get("AuthorizationKey") is None
            # The backend did not take the new key: the station comes back with the old one.
            await wait_until(lambda: len(secure.of("BootNotification")) == 2 and client.online)
            assert json.loads(key_file.read_text()) == {"key": NEW_KEY, "fallback": PASSWORD}
            # Now it knows the new key: the next connection uses it, the old one is dropped.
            secure.password = NEW_KEY
            await secure.drop_connections()
            await wait_until(lambda: len(secure.of("BootNotification")) == 3 and client.online)
            assert json.loads(key_file.read_text()) == {"key": NEW_KEY, "fallback": None}
            assert AuthorizationKeyFile(key_file, PASSWORD).passwords() == [NEW_KEY]


def test_a_key_an_older_release_kept_in_the_store_moves_to_the_file(tmp_path, store):
    store.config_set("AuthorizationKey", NEW_KEY)
    key_file = AuthorizationKeyFile(tmp_path / "certs" / "authorization_key.json", PASSWORD)
    key_file.adopt_from_store(store)
    assert store.config_get("AuthorizationKey") == ""
    assert key_file.passwords() == [NEW_KEY]
    assert AuthorizationKeyFile(key_file.path).passwords() == [NEW_KEY]


# -- no secret in any log --------------------------------------------------------------------

async def test_no_secret_in_any_log_at_debug_through_profiles_1_and_2(tmp_path, pki, caplog):
    caplog.set_level(logging.DEBUG)
    secrets = [PASSWORD, NEW_KEY]
    secrets += [base64.b64encode(f"CP1:{s}".encode()).decode() for s in secrets]
    context = server_context(tmp_path, pki["server"])
    with capture_logs() as station_events:
        async with TestCsms(password=PASSWORD) as plain, \
                TestCsms(password=PASSWORD, ssl_context=context) as secure:
            config = station_config(tmp_path, plain.url, secure.url)
            install(config.security, pki, client=None)
            async with station_client(config) as client:
                await wait_until(lambda: client.online)
                assert await change(plain, "SecurityProfile", "2") == "Accepted"
                await wait_until(lambda: client.online and secure.of("BootNotification"))
                secure.password = NEW_KEY
                assert await change(secure, "AuthorizationKey", NEW_KEY) == "Accepted"
                await wait_until(lambda: len(secure.of("BootNotification")) == 2 and client.online)
                assert secure.authorizations[-1] == f"Basic {secrets[3]}"  # it was sent
    # The station's own lines as they are written, and every line of the libraries on its
    # side (the test backends' server side logs what it receives: not the station's).
    lines = [render_line(e["log_level"], e["event"],
                         {k: v for k, v in e.items() if k not in ("event", "log_level")})
             for e in station_events]
    station_side = [r for r in caplog.records
                    if r.name.startswith("websockets.client") or r.name.startswith("chargerfw")
                    or (r.name == "ocpp" and r.pathname == library_log.__file__)]
    lines += [r.getMessage() for r in station_side]
    assert any("Authorization: ***" in line for line in lines)  # websockets' handshake log
    assert any("AuthorizationKey" in line for line in lines)
    leaks = [line for line in lines for secret in secrets if secret in line]
    assert leaks == []


def test_a_key_file_that_cannot_be_written_leaves_the_key_where_it_was(tmp_path, store):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    store.config_set("AuthorizationKey", NEW_KEY)
    key_file = AuthorizationKeyFile(blocked / "authorization_key.json", PASSWORD)
    key_file.adopt_from_store(store)
    assert store.config_get("AuthorizationKey") == NEW_KEY and key_file.passwords() == [NEW_KEY]
    status, reason = authorization_key_applier(key_file)("another-key-0123456789")
    assert status.value == "Rejected" and reason.startswith(f"cannot write {key_file.path}")
    assert key_file.passwords() == [NEW_KEY]
