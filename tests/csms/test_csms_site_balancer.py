"""Site load management over real websockets: the backend re-shares a site's current when
sessions start, stop, draw less, or chargers go away, and sends the limits as profiles."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from csms_doubles import SimCharger, add_test_charger, csms_running, sim_charger
from fakes import wait_until

from chargerfw.csms.load_management import allocate
from chargerfw.csms.server import RunningCsms
from chargerfw.csms.site_balancer import SiteBalancer, combined_schedule
from chargerfw.csms.store.sites import ConnectorSnapshot, SiteSnapshot

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
Journal = list[tuple[float, str, int, float, str]]


@asynccontextmanager
async def site_with(csms: RunningCsms, stack: AsyncExitStack, site_a: float, count: int,
                    journal: Journal) -> AsyncIterator[list[SimCharger]]:
    await csms.db(csms.store.add_site, "S", "Car park", site_a)
    for n in range(4):  # the cards the tests start with
        await csms.db(csms.store.add_local_token, f"TAG{n}")
    chargers = []
    for n in range(1, count + 1):
        await csms.db(add_test_charger, csms.store, f"CP{n}", None, None, f"LOC{n}")
        await csms.db(csms.store.assign_site, f"CP{n}", "S")
        charger = await stack.enter_async_context(sim_charger(csms, f"CP{n}"))
        charger.journal = journal
        await charger.boot()
        chargers.append(charger)
    yield chargers


def limits(*chargers: SimCharger) -> list[float | None]:
    return [c.limit(1) for c in chargers]


async def until_limits(expected: list[float | None], *chargers: SimCharger) -> None:
    await wait_until(lambda: limits(*chargers) == expected,
                     what=f"limits {expected} (have {limits(*chargers)})")


def sent(journal: Journal, since: int = 0) -> list[tuple[str, int, float, str]]:
    return [(cp, connector, limit, answer) for _, cp, connector, limit, answer
            in journal[since:]]


async def test_shares_follow_sessions_reductions_first(tmp_path: Path) -> None:
    journal: Journal = []
    async with csms_running(str(tmp_path / "c.db")) as csms, AsyncExitStack() as stack, \
            site_with(csms, stack, 32, 2, journal) as (cp1, cp2):
        # At boot each charger gets a TxDefaultProfile: an arrival's start within the share.
        await until_limits([16.0, 16.0], cp1, cp2)
        assert set(cp1.profiles) == set(cp2.profiles) == {(0, "TxDefaultProfile")}
        assert cp1.profiles[(0, "TxDefaultProfile")]["charging_profile_kind"] == "Relative"
        # The boots' re-sends may still run after the connects' shares were seen.
        await csms.balancer.settled()

        mark = len(journal)
        tx1 = (await cp1.start_tx(1, "TAG1", 0, T0)).transaction_id
        await until_limits([32.0, 0.0], cp1, cp2)
        # The idle charger's default is lowered before the session's profile raises it.
        assert sent(journal, mark) == [("CP2", 0, 0.0, "Accepted"), ("CP1", 1, 32.0, "Accepted")]
        profile = cp1.profiles[(1, "TxProfile")]
        assert profile["transaction_id"] == tx1 and profile["stack_level"] == 1
        assert profile["charging_schedule"]["charging_rate_unit"] == "A"

        mark = len(journal)
        tx2 = (await cp2.start_tx(1, "TAG2", 0, T0 + timedelta(minutes=1))).transaction_id
        await until_limits([16.0, 16.0], cp1, cp2)
        assert sent(journal, mark) == [("CP1", 1, 16.0, "Accepted"), ("CP2", 1, 16.0, "Accepted")]

        # CP1's vehicle draws 8 A of 16: it keeps 10 A, CP2 gets the rest.
        mark = len(journal)
        await cp1.meter(1, tx1, T0 + timedelta(minutes=2), 100, amps=8.0)
        await until_limits([10.0, 22.0], cp1, cp2)
        assert sent(journal, mark) == [("CP1", 1, 10.0, "Accepted"), ("CP2", 1, 22.0, "Accepted")]
        # Still drawing less: nothing changes, nothing is sent.
        await cp1.meter(1, tx1, T0 + timedelta(minutes=3), 200, amps=8.2)
        await csms.balancer.settled()
        assert len(journal) == mark + 2

        # CP2 stops: its connector is idle again with what CP1 leaves.
        await cp2.stop_tx(tx2, 500, T0 + timedelta(minutes=4))
        cp2.tx_ended(1)
        # CP1 now keeps its latest draw (8.2 A) + 2 A; CP2's default gets the rest.
        await until_limits([10.2, 21.8], cp1, cp2)
        assert (1, "TxProfile") not in cp2.profiles
        await csms.balancer.settled()

        shown = await csms.db(csms.store.site_snapshot, "S")
        given = {(c.charge_point_id, c.connector_id): (c.allocation["limit_a"],
                                                       c.allocation["role"])
                 for c in shown.connectors if c.allocation is not None}
        assert given == {("CP1", 1): (10.2, "share"), ("CP2", 1): (21.8, "idle")}


def test_a_new_session_counts_from_its_default_not_an_ended_sessions_limit() -> None:
    """A connector whose last TxProfile (20 A) belonged to an ended session runs its new
    one on the charger's TxDefaultProfile (0 A): 10 A is an increase, sent after the
    reductions, not with them."""
    class NoServer:
        connected = {"CP1": None, "CP2": None}
        load_listener = None

    def conn(cp: str, tx: int, given: dict[str, Any]) -> ConnectorSnapshot:
        return ConnectorSnapshot(cp, 1, "S", frozenset(), 32.0, 6.0, "Charging", tx, T0,
                                 None, given)  # type: ignore[arg-type]

    snap = SiteSnapshot(
        {"id": "S", "stack_level": 1}, {},  # type: ignore[arg-type]
        [conn("CP1", 3, {"limit_a": 20.0, "transaction_id": 1, "schedule": {}}),
         conn("CP2", 2, {"limit_a": 20.0, "transaction_id": 2, "schedule": {}})],
        {"CP1": {"limit_a": 0.0, "schedule": {}}})  # type: ignore[dict-item]
    balancer = SiteBalancer(None, NoServer())  # type: ignore[arg-type]
    loads = [balancer._load(c, {"CP1", "CP2"}) for c in snap.connectors]
    sends = balancer._sends(snap, allocate(20, loads), {})
    assert [(s.charge_point_id, s.limit_a, s.old_a, s.lowers) for s in sends] == [
        ("CP1", 10.0, 0.0, False), ("CP2", 10.0, 20.0, True)]


async def test_queue_when_the_minimum_does_not_fit(tmp_path: Path) -> None:
    journal: Journal = []
    async with csms_running(str(tmp_path / "c.db")) as csms, AsyncExitStack() as stack, \
            site_with(csms, stack, 13, 3, journal) as (cp1, cp2, cp3):
        txs = []
        for n, charger in enumerate((cp1, cp2, cp3)):
            txs.append((await charger.start_tx(1, f"TAG{n}", 0,
                                               T0 + timedelta(minutes=n))).transaction_id)
            await csms.balancer.settled()
        await until_limits([6.5, 6.5, 0.0], cp1, cp2, cp3)
        snap = await csms.db(csms.store.site_snapshot, "S")
        assert [c.allocation["role"] for c in snap.connectors] == ["share", "share", "queued"]
        # The first leaves: the waiting vehicle gets its place.
        await cp1.stop_tx(txs[0], 100, T0 + timedelta(minutes=5))
        cp1.tx_ended(1)
        await until_limits([0.0, 6.5, 6.5], cp1, cp2, cp3)


async def test_refused_reduction_counts_at_the_old_limit(tmp_path: Path) -> None:
    journal: Journal = []
    async with csms_running(str(tmp_path / "c.db")) as csms, AsyncExitStack() as stack, \
            site_with(csms, stack, 32, 2, journal) as (cp1, cp2):
        await cp1.start_tx(1, "TAG1", 0, T0)
        await until_limits([32.0, 0.0], cp1, cp2)
        cp1.answers["SetChargingProfile"] = "Rejected"
        mark = len(journal)
        await cp2.start_tx(1, "TAG2", 0, T0 + timedelta(minutes=1))
        await wait_until(lambda: cp2.limit(1) == 0.0 and (1, "TxProfile") in cp2.profiles,
                         what="CP2 queued")
        await csms.balancer.settled()
        # CP1 would not come down: CP2 waits rather than overload the site.
        assert sent(journal, mark) == [("CP1", 1, 16.0, "Rejected"), ("CP2", 1, 0.0, "Accepted")]
        assert limits(cp1, cp2) == [32.0, 0.0]


async def test_offline_charger_keeps_its_share_until_it_returns(tmp_path: Path) -> None:
    journal: Journal = []
    db = str(tmp_path / "c.db")
    async with csms_running(db) as csms, AsyncExitStack() as stack, \
            site_with(csms, stack, 32, 1, journal) as (cp1,):
        await csms.db(add_test_charger, csms.store, "CP2", None, None, "LOC2")
        await csms.db(csms.store.assign_site, "CP2", "S")
        async with sim_charger(csms, "CP2") as cp2:
            cp2.journal = journal
            await cp2.boot()
            tx2 = (await cp2.start_tx(1, "TAG2", 0, T0)).transaction_id
            await until_limits([0.0, 32.0], cp1, cp2)
        # CP2 is gone with 32 A it may still apply: a new session on CP1 has to wait.
        await wait_until(lambda: "CP2" not in csms.ocpp.connected, what="CP2 gone")
        await csms.balancer.settled()
        await cp1.start_tx(1, "TAG1", 0, T0 + timedelta(minutes=1))
        await wait_until(lambda: (1, "TxProfile") in cp1.profiles, what="CP1 TxProfile")
        assert cp1.limit(1) == 0.0
        # It returns and boots: both share, and it is told everything again.
        async with sim_charger(csms, "CP2") as cp2:
            cp2.journal = journal
            await cp2.boot()
            await until_limits([16.0, 16.0], cp1, cp2)
            assert cp2.profiles[(1, "TxProfile")]["transaction_id"] == tx2


def fallbacks_told(charger: SimCharger) -> list[str]:
    return [kw["value"] for action, kw in charger.received
            if action == "ChangeConfiguration" and kw["key"] == "ChargerfwOfflineLimitA"]


async def test_chargers_are_told_the_sites_offline_fallback(tmp_path: Path) -> None:
    journal: Journal = []
    async with csms_running(str(tmp_path / "c.db")) as csms, AsyncExitStack() as stack:
        await csms.db(csms.store.add_site, "S", "Car park", 32, fallback_a=7.56)
        await csms.db(csms.store.add_local_token, "TAG1")
        for n in (1, 2):
            await csms.db(add_test_charger, csms.store, f"CP{n}", None, None, f"LOC{n}")
        await csms.db(csms.store.assign_site, "CP1", "S")
        cp1 = await stack.enter_async_context(sim_charger(csms, "CP1"))
        cp2 = await stack.enter_async_context(sim_charger(csms, "CP2"))
        cp1.journal = cp2.journal = journal
        cp2.answers["ChangeConfiguration"] = "NotSupported"  # another firmware
        for charger in (cp1, cp2):
            await charger.boot()
        await wait_until(lambda: cp1.limit(1) == 32.0, what="CP1's default")
        await csms.balancer.settled()
        # Before its first share, in the key's resolution; told at the connect and again
        # after the boot (once if the boot came before the connect's run), not at every run.
        told = fallbacks_told(cp1)
        assert told in (["7.5"], ["7.5", "7.5"])
        first_told = next(i for i, (action, _) in enumerate(cp1.received)
                          if action == "ChangeConfiguration")
        first_profile = next(i for i, (action, _) in enumerate(cp1.received)
                             if action == "SetChargingProfile")
        assert first_told < first_profile
        assert fallbacks_told(cp2) == []  # on no site: nothing to tell
        await cp1.start_tx(1, "TAG1", 0, T0)
        await until_limits([32.0], cp1)
        await csms.balancer.settled()
        assert fallbacks_told(cp1) == told

        # Assigned to the site while connected: told at its next run; a refusal is logged
        # and not asked again until it boots.
        await csms.db(csms.store.assign_site, "CP2", "S")
        await cp2.status(1, "Available")
        await csms.balancer.rebalance("S")
        await csms.balancer.rebalance("S")
        assert fallbacks_told(cp2) == ["7.5"]
        # A boot: told again (it may be a replaced unit).
        await cp1.boot()
        await wait_until(lambda: fallbacks_told(cp1) == [*told, "7.5"], what="told again")


def test_combined_schedule_never_exceeds_the_share() -> None:
    now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert combined_schedule(16.0, None, now) == (
        "Relative", {"charging_rate_unit": "A",
                     "charging_schedule_period": [{"start_period": 0, "limit": 16.0}]}, None)
    emsp: dict[str, Any] = {"charging_rate_unit": "W", "min_charging_rate": 2000,
                            "charging_profile_period": [{"start_period": 0, "limit": 22080},
                                                        {"start_period": 600, "limit": 6900}]}
    kind, schedule, start = combined_schedule(16.0, emsp, now)
    assert (kind, start) == ("Relative", None)
    assert schedule == {"charging_rate_unit": "A", "min_charging_rate": 2.9,
                        "charging_schedule_period": [{"start_period": 0, "limit": 16.0},
                                                     {"start_period": 600, "limit": 10.0}]}
    # Starting in an hour for 30 minutes: the share before and after.
    later = {"charging_rate_unit": "A", "duration": 1800,
             "start_date_time": "2026-03-01T11:00:00Z",
             "charging_profile_period": [{"start_period": 0, "limit": 8}]}
    kind, schedule, start = combined_schedule(16.0, later, now)
    assert (kind, start) == ("Absolute", "2026-03-01T09:59:00Z")
    assert schedule["charging_schedule_period"] == [
        {"start_period": 0, "limit": 16.0}, {"start_period": 3660, "limit": 8.0},
        {"start_period": 5460, "limit": 16.0}]
