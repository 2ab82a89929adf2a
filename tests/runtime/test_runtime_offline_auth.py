"""A card tap whose Authorize cannot be answered is decided by the offline rules
(LocalAuthorizeOffline with the cache or local list, AllowOfflineTxForUnknownId) or refused with
the reason told, never lost: while BootNotification is Pending or Rejected, and however the link
fails during Authorize (closed while the answer is awaited, a timeout, a CALLERROR). The station
runs in-process on simulated hardware against the test CSMS over a real WebSocket."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from fakes import wait_until
from ocpp_testcsms import CsmsBehaviour, TestCsms
from runtime_helpers import ctl, running_station, sim_station_config

from chargerfw.runtime.station import StationRuntime
from chargerfw.station.auth import IdTagInfo
from chargerfw.station.enums import AuthorizationStatus
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(40)

CACHED = "04CAC4ED"
UNKNOWN = "04DEAD"


def remember_tag(config: Any, id_tag: str) -> None:
    with Store(config.storage.path) as store:
        store.cache_put(id_tag, IdTagInfo(AuthorizationStatus.ACCEPTED))


def events(runtime: StationRuntime) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    runtime.event_listeners.append(lambda event, fields: seen.append((event, fields)))
    return seen


def phase(runtime: StationRuntime) -> str:
    return runtime.controllers[1].phase.value


@pytest.mark.parametrize("boot_status", ["Pending", "Rejected"])
async def test_a_tap_before_boot_is_accepted_is_decided_by_the_offline_rules(
        tmp_path: Path, short_dir: Path, boot_status: str) -> None:
    behaviour = CsmsBehaviour(boot_status=boot_status, boot_interval=300)
    async with TestCsms(behaviour) as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        remember_tag(config, CACHED)
        sock = short_dir / "control.sock"
        async with running_station(config, sock) as runtime:
            seen = events(runtime)
            await csms.wait_for(lambda: csms.of("BootNotification"))
            await wait_until(lambda: runtime.client.registration == boot_status)
            # A card the station does not know is refused, and the reason is told.
            await ctl(sock, "sim.tap", uid=UNKNOWN)
            await wait_until(lambda: any(e == "tag.rejected" for e, _ in seen),
                             what="unknown card refused")
            rejected = next(f for e, f in seen if e == "tag.rejected")
            assert (rejected["id_tag"], rejected["source"], rejected["online"]) == (
                UNKNOWN, "none", False)
            assert phase(runtime) == "idle"
            # The cached card starts, offline: nothing but BootNotification went out.
            await ctl(sock, "sim.tap", uid=CACHED)
            await wait_until(lambda: phase(runtime) == "authorized", what="cached card authorized")
            authorized = next(f for e, f in seen if e == "tag.authorized")
            assert (authorized["source"], authorized["online"]) == ("cache", False)
            await ctl(sock, "sim.plug")
            await wait_until(lambda: runtime.controllers[1].transaction is not None)
            assert {r.action for r in csms.received} == {"BootNotification"}


async def test_allow_offline_tx_for_unknown_id_applies_while_pending(
        tmp_path: Path, short_dir: Path) -> None:
    async with TestCsms(CsmsBehaviour(boot_status="Pending", boot_interval=300)) as csms:
        _, config = sim_station_config(tmp_path, csms.url,
                                       keys={"AllowOfflineTxForUnknownId": "true"})
        sock = short_dir / "control.sock"
        async with running_station(config, sock) as runtime:
            await wait_until(lambda: runtime.client.registration == "Pending")
            await ctl(sock, "sim.tap", uid=UNKNOWN)
            await wait_until(lambda: phase(runtime) == "authorized")


async def drop_when_asked(csms: TestCsms) -> None:
    await csms.wait_for(lambda: csms.of("Authorize"))
    await csms.drop_connections()


FAILURES = {
    # How the Authorize fails: (the backend's behaviour, what the test does meanwhile)
    "link closed while the answer is awaited": (CsmsBehaviour(swallow={"Authorize"}),
                                                drop_when_asked),
    "no answer (timeout)": (CsmsBehaviour(swallow={"Authorize"}), None),
    "CALLERROR": (CsmsBehaviour(authorize_error=True), None),
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_every_authorize_failure_falls_back_to_the_offline_rules(
        tmp_path: Path, short_dir: Path, failure: str) -> None:
    behaviour, meanwhile = FAILURES[failure]
    async with TestCsms(dataclasses.replace(behaviour)) as csms:
        _, config = sim_station_config(tmp_path, csms.url)
        remember_tag(config, CACHED)
        sock = short_dir / "control.sock"
        async with running_station(config, sock) as runtime:
            await wait_until(lambda: runtime.client.online, what="online")
            authorizer = runtime.parts.core.authorizer
            # Well below the call timeout (30 s): only the timeout case waits for it.
            authorizer.config = dataclasses.replace(authorizer.config, authorize_timeout_s=2.0)
            seen = events(runtime)
            side = asyncio.create_task(meanwhile(csms)) if meanwhile else None
            await ctl(sock, "sim.tap", uid=CACHED)
            # The closed link is noticed at once: decided well before the Authorize timeout.
            await wait_until(lambda: phase(runtime) == "authorized", timeout=1.5 if side else 5,
                             what="authorized from the cache")
            authorized = next(f for e, f in seen if e == "tag.authorized")
            assert (authorized["source"], authorized["online"]) == ("cache", False)
            if side is not None:
                await side
            # An unknown card is refused the same way, with its reason.
            await ctl(sock, "sim.tap", uid=UNKNOWN)
            await wait_until(lambda: any(e == "tag.rejected" for e, _ in seen), timeout=5)
            await ctl(sock, "sim.plug")
            await wait_until(lambda: runtime.controllers[1].transaction is not None)
