"""The WebSocket link: security profile 1 and the set-up of each profile, back-off, liveness by ping/pong, redaction."""

from __future__ import annotations

import asyncio
import base64
import contextlib

import pytest
from fakes import wait_until
from ocpp_support import running_client
from ocpp_testcsms import TestCsms

from chargerfw.config.station import SecuritySection
from chargerfw.ocpp.connection import (
    Backoff,
    ConnectionSetupError,
    OcppConnection,
)
from chargerfw.ocppj.frames import redact_frame

pytestmark = pytest.mark.timeout(30)


def test_backoff_grows_with_full_jitter_and_resets():
    top = Backoff(initial_s=1, maximum_s=8, factor=2, floor_s=0.1, rng=lambda: 1.0)
    assert [top.next_delay() for _ in range(6)] == [1, 2, 4, 8, 8, 8]
    top.reset()
    assert top.next_delay() == 1
    bottom = Backoff(initial_s=1, maximum_s=8, floor_s=0.1, rng=lambda: 0.0)
    assert bottom.next_delay() == 0.1  # never a zero-delay reconnect storm
    half = Backoff(initial_s=2, maximum_s=100, rng=lambda: 0.5)
    assert [half.next_delay() for _ in range(3)] == [1, 2, 4]
    with pytest.raises(ValueError):
        Backoff(initial_s=10, maximum_s=1)


def test_connect_kwargs_per_profile(tmp_path):
    plain = OcppConnection("ws://h:1/ocpp/", "CP 1", ping_interval_s=30).connect_kwargs()
    assert plain["uri"] == "ws://h:1/ocpp/CP 1"
    assert plain["subprotocols"] == ["ocpp1.6"]
    assert "additional_headers" not in plain and "ssl" not in plain
    assert (plain["ping_interval"], plain["ping_timeout"]) == (30, 30)
    assert OcppConnection("ws://h", "CP1", ping_interval_s=0).connect_kwargs()["ping_interval"] is None

    basic = OcppConnection("ws://h", "CP1", security_profile=1, password="pw:x").connect_kwargs()
    token = basic["additional_headers"]["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(token).decode() == "CP1:pw:x"

    with pytest.raises(ConnectionSetupError, match="needs a password"):
        OcppConnection("ws://h", "CP1", security_profile=1).connect_kwargs()
    security = SecuritySection(certificates_dir=tmp_path / "certs")
    with pytest.raises(ConnectionSetupError, match="wss"):
        OcppConnection("ws://h", "CP1", security_profile=2, password="p",
                       security=security).connect_kwargs()
    with pytest.raises(ConnectionSetupError, match="CentralSystemRootCertificate"):
        OcppConnection("wss://h", "CP1", security_profile=2, password="p",
                       security=security).connect_kwargs()
    with pytest.raises(ConnectionSetupError, match="not supported"):
        OcppConnection("wss://h", "CP1", security_profile=4, password="p").connect_kwargs()
    # A profile raised from ws:// uses the secure URL; the lower profiles keep the plain one.
    raised = OcppConnection("ws://h/ocpp", "CP1", security_profile=1, password="p",
                            secure_url="wss://h:8443/ocpp/")
    assert raised.url_for(1) == "ws://h/ocpp" and raised.url_for(2) == "wss://h:8443/ocpp"


@pytest.mark.parametrize("frame, expected", [
    ('[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"topsecret"}]',
     '[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"***"}]'),
    ('[2,"1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]',
     '[2,"1","ChangeConfiguration",{"key":"HeartbeatInterval","value":"60"}]'),
    ('[2,"1","DataTransfer",{"vendorId":"x","data":"y","password":"p"}]',
     '[2,"1","DataTransfer",{"vendorId":"x","data":"y","password":"***"}]'),
    ("not json", "not json"),
])
def test_redact_frame(frame, expected):
    assert redact_frame(frame) == expected


async def test_profile1_sends_basic_auth(tmp_path):
    async with TestCsms(password="basic-password-123") as csms:
        async with running_client(tmp_path / "a", csms.url, profile=1,
                                  password="basic-password-123") as client:
            await wait_until(lambda: client.online)
        async with running_client(tmp_path / "b", csms.url, profile=1, password="wrong") as client:
            await wait_until(lambda: client.connection.health.failed_attempts >= 1)
            assert "401" in client.connection.health.last_error


class FreezableProxy:
    """A loopback TCP proxy that can stop forwarding without closing: a silently dead link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.server.close()

    async def _pipe(self, reader, writer, frozen_at_start: bool) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                if self.frozen.is_set():
                    continue  # swallow: nothing arrives, nothing is closed
                writer.write(data)
                await writer.drain()

    async def _handle(self, reader, writer) -> None:
        if self.frozen.is_set():
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for a, b in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(a, b, False))
            self._tasks.add(task)


async def test_missed_pong_closes_and_reconnects(tmp_path):
    async with TestCsms() as csms:
        proxy = FreezableProxy(csms.port)
        await proxy.start()
        try:
            url = f"ws://127.0.0.1:{proxy.port}/ocpp"
            # Reconnect after a second: the reason the link died is still the last error when
            # the test looks (a loaded machine would otherwise see a reconnect attempt's).
            async with running_client(tmp_path, url, keys_overrides={"WebSocketPingInterval": "1"},
                                      backoff=Backoff(1.0, 1.0, floor_s=1.0)) as client:
                await wait_until(lambda: client.online)
                health = client.connection.health
                assert health.state == "connected" and health.ping_interval_s == 1
                await wait_until(lambda: health.last_pong_latency_s is not None, timeout=5)
                proxy.frozen.set()
                # No pong within the ping timeout: the link is declared dead and dropped.
                await wait_until(lambda: health.state != "connected", timeout=6)
                assert "ping" in (health.last_error or "")
                assert not client.online
                proxy.frozen.clear()
                await wait_until(lambda: client.online and health.connects == 2, timeout=6)
                assert len(csms.of("BootNotification")) == 2
        finally:
            await proxy.stop()


async def test_ping_interval_changes_on_the_live_socket(tmp_path):
    async with TestCsms() as csms, running_client(tmp_path, csms.url) as client:
        await wait_until(lambda: client.online)
        reply = await csms.send_raw(
            '[2,"p","ChangeConfiguration",{"key":"WebSocketPingInterval","value":"7"}]', "p")
        assert reply == [3, "p", {"status": "Accepted"}]
        ws = client.connection._ws
        assert (ws.ping_interval, ws.ping_timeout) == (7, 7)
        assert client.connection.health.ping_interval_s == 7
        assert client.connection.health.connects == 1
