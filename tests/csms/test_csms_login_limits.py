"""Failed OCPP Basic-auth logins are limited per charge point id and per source address."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from csms_doubles import add_test_charger, basic_auth, csms_running
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from chargerfw.csms.login_limits import LoginLimits, LoginThrottle
from chargerfw.csms.server import RunningCsms

pytestmark = pytest.mark.timeout(60)
OCPP16 = Subprotocol("ocpp1.6")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lockout_grows_and_success_clears() -> None:
    clock = Clock()
    throttle = LoginThrottle(LoginLimits(max_failures_per_id=3, max_failures_per_address=100,
                                         lockout_base_s=10, lockout_max_s=35, window_s=600),
                             clock)
    for _ in range(2):
        throttle.failed("CP1", "10.0.0.1")
    assert throttle.retry_after("CP1", "10.0.0.1") == 0
    throttle.failed("CP1", "10.0.0.1")
    assert throttle.retry_after("CP1", "10.0.0.9") == 10  # the id, from anywhere
    assert throttle.retry_after("CP2", "10.0.0.1") == 0  # the address is under its limit
    clock.now += 10
    throttle.failed("CP1", "10.0.0.1")
    assert throttle.retry_after("CP1", None) == 20  # doubled
    clock.now += 20
    throttle.failed("CP1", "10.0.0.1")
    assert throttle.retry_after("CP1", None) == 35  # capped
    throttle.succeeded("CP1")
    assert throttle.retry_after("CP1", None) == 0


def test_failures_expire_and_addresses_count_unknown_ids() -> None:
    clock = Clock()
    throttle = LoginThrottle(LoginLimits(max_failures_per_id=2, max_failures_per_address=3,
                                         lockout_base_s=5, window_s=60, max_tracked=3), clock)
    throttle.failed("CP1", "a")
    clock.now += 61  # outside the window: forgotten
    throttle.failed("CP1", "a")
    assert throttle.retry_after("CP1", "b") == 0
    for _ in range(2):
        throttle.failed(None, "a")  # unknown ids count against the address only
    assert throttle.retry_after("CP9", "a") == 5
    assert throttle.retry_after("CP9", "b") == 0
    for address in ("x", "y", "z"):  # beyond max_tracked the oldest records go
        throttle.failed(None, address)
    assert throttle.retry_after("CP9", "a") == 0
    with pytest.raises(ValueError):
        LoginLimits(max_failures_per_id=0)


async def login(csms: RunningCsms, cp_id: str, password: str) -> int:
    """The HTTP status of a WebSocket handshake with these credentials (101 when it opens)."""
    try:
        async with connect(f"{csms.ocpp_url}/{cp_id}", subprotocols=[OCPP16],
                           additional_headers=basic_auth(cp_id, password)):
            return 101
    except InvalidStatus as exc:
        if exc.response.status_code == 429:
            assert int(exc.response.headers["Retry-After"]) >= 1
        return exc.response.status_code


async def test_failed_logins_are_throttled(tmp_path: Path) -> None:
    limits = LoginLimits(max_failures_per_id=2, max_failures_per_address=4, lockout_base_s=0.5)
    async with csms_running(str(tmp_path / "c.db"), login_limits=limits) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "right", location_id="LOC1")
        await csms.db(add_test_charger, csms.store, "CP2", "right2", location_id="LOC2")
        assert [await login(csms, "CP1", "wrong") for _ in range(2)] == [401, 401]
        # Locked out: even the right password waits, and no password is checked meanwhile.
        assert await login(csms, "CP1", "right") == 429
        await asyncio.sleep(0.6)
        assert await login(csms, "CP1", "right") == 101
        assert await login(csms, "CP1", "wrong") == 401  # the success cleared the id
        # The address has failed three times; a guessed id is its fourth: it is locked out,
        # whichever charger logs in from it.
        assert await login(csms, "NOPE", "x") == 404
        assert await login(csms, "CP2", "right2") == 429
        await asyncio.sleep(0.6)
        assert await login(csms, "CP2", "right2") == 101
