"""A fleet of simulated chargers (real station runtimes on simulated hardware) against the
bundled backend in this process: one backend session per charger per scripted session with the
charger's own meter delta, a fault the backend sees as Faulted, what the report counts."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from pathlib import Path

import pytest
from fleet_helpers import StatusWatcher, bundled_csms

from chargerfw.sim.fleet import FleetSettings, render_report, run_fleet
from chargerfw.sim.scenario import charger_uid, parse_scenario
from chargerfw.store import Store

pytestmark = pytest.mark.timeout(90)

COUNT = 4
CHARGE_S = 2.0
POWER_W = 22000.0


def fast_settings(url: str, tmp_path: Path, count: int = COUNT) -> FleetSettings:
    return FleetSettings(count=count, csms_url=url, state_dir=tmp_path / "fleet",
                         safety_poll_s=0.05, meter_poll_s=0.25, meter_values_interval_s=1,
                         # The flush ends once the outbox is empty; the bound is for a loaded
                         # machine delivering the stops of sessions cut off at the end.
                         shutdown_flush_s=6.0)


async def test_scripted_sessions_reach_the_backend_once_each_with_the_meter_delta(
        tmp_path: Path) -> None:
    scenario = parse_scenario({
        "name": "two-sessions", "repeat": 2, "stagger_s": 0.05, "pause_s": 0.2,
        "step": [{"action": "plug_in"}, {"action": "tap"},
                 {"action": "charge", "duration_s": CHARGE_S, "power_w": POWER_W},
                 {"action": "tap"}, {"action": "unplug"}]})
    async with bundled_csms(tmp_path, COUNT) as csms:
        report = await run_fleet(fast_settings(csms.ocpp_url, tmp_path), scenario)
        backend = csms.store.transactions_table(limit=100)

    assert not report.failed and report.exit_code() == 0, render_report(report)
    assert [c.charge_point_id for c in report.chargers] == [
        "FLEET-001", "FLEET-002", "FLEET-003", "FLEET-004"]
    expected_wh = POWER_W * CHARGE_S / 3600
    for index, charger in enumerate(report.chargers, start=1):
        cp_id = charger.charge_point_id
        sessions = sorted((t for t in backend if t["charge_point_id"] == cp_id),
                          key=lambda t: t["id"])
        # Exactly one backend session per scripted session, each stopped by the card.
        assert len(sessions) == 2, (cp_id, sessions)
        assert all(t["id_tag"] == charger_uid(index) for t in sessions)
        assert all(t["stop_reason"] == "Local" and t["status"] == "COMPLETED" for t in sessions)
        with Store(tmp_path / "fleet" / cp_id / "state.db") as store:
            local = sorted(store.transactions(limit=10), key=lambda r: r.local_id)
        assert [r.backend_tx_id for r in local] == [t["id"] for t in sessions]
        for ours, theirs in zip(local, sessions, strict=True):
            assert (theirs["meter_start"], theirs["meter_stop"]) == (
                ours.meter_start_wh, ours.meter_stop_wh)
            delta = theirs["meter_stop"] - theirs["meter_start"]
            # The vehicle drew 22 kW for the step plus the moments until the stop took effect.
            assert expected_wh * 0.8 - 1 <= delta <= expected_wh * 2 + 2, delta
        # The meter never runs backwards from one session to the next.
        assert sessions[1]["meter_start"] >= sessions[0]["meter_stop"]

        assert charger.boot_accepted and charger.registration == "Accepted"
        assert (charger.sessions_started, charger.sessions_stopped,
                charger.sessions_confirmed) == (2, 2, 2)
        assert (charger.runs_completed, charger.steps_done, charger.steps_failed) == (2, 10, 0)
        for action in ("StartTransaction", "StopTransaction"):
            count = charger.messages[action]
            assert (count.sent, count.confirmed, count.errors) == (2, 2, 0), (cp_id, action)
        assert charger.messages["Authorize"].confirmed == 2
        assert charger.messages["MeterValues"].confirmed >= 2  # at 1 s while charging
        assert charger.messages["StatusNotification"].confirmed >= 6
        assert charger.call_errors == 0 and charger.frames_missed == 0
        assert charger.outbox_pending == 0 and charger.outbox_dead == 0

    totals = report.totals()
    assert totals["boots_accepted"] == COUNT
    assert totals["sessions_started"] == totals["sessions_stopped"] == 2 * COUNT
    assert totals["messages"]["StartTransaction"] == {"sent": 8, "confirmed": 8, "errors": 0}
    text = render_report(report)
    assert "boots accepted 4/4" in text and "sessions started 8 stopped 8 confirmed 8" in text


async def test_fault_step_shows_faulted_at_the_backend_and_ends_the_session(
        tmp_path: Path) -> None:
    scenario = parse_scenario({
        "stagger_s": 0.05,
        "step": [{"action": "plug_in"}, {"action": "tap"},
                 {"action": "charge", "duration_s": 1, "current_a": 16},
                 {"action": "fault", "kind": "rcd", "clear_after_s": 1},
                 {"action": "unplug"}]})
    count = 3
    async with bundled_csms(tmp_path, count) as csms:
        async with StatusWatcher(csms) as watcher:
            report = await run_fleet(fast_settings(csms.ocpp_url, tmp_path, count), scenario)
        backend = csms.store.transactions_table(limit=100)

    assert not report.failed, render_report(report)
    for charger in report.chargers:
        seen = watcher.seen[charger.charge_point_id]
        assert ("Charging", "NoError", None) in seen
        assert ("Faulted", "GroundFailure", "RcdTrip") in seen, seen
        assert seen.index(("Faulted", "GroundFailure", "RcdTrip")) > seen.index(
            ("Charging", "NoError", None))
        assert seen[-1][0] == "Available"  # cleared, unplugged
        sessions = [t for t in backend if t["charge_point_id"] == charger.charge_point_id]
        assert len(sessions) == 1 and sessions[0]["stop_reason"] == "Other"
        assert charger.steps_failed == 0 and charger.sessions_stopped == 1


async def test_failed_step_is_reported_and_the_next_run_starts_clean(tmp_path: Path) -> None:
    # Charger 2's card is not whitelisted: the backend answers Invalid; charger 1 is fine.
    scenario = parse_scenario({
        "repeat": 2, "stagger_s": 0.05,
        "step": [{"action": "plug_in"}, {"action": "tap", "timeout_s": 10},
                 {"action": "charge", "duration_s": 0.5, "power_w": 7400},
                 {"action": "unplug"}]})
    async with bundled_csms(tmp_path, 1) as csms:
        report = await run_fleet(fast_settings(csms.ocpp_url, tmp_path, 2), scenario)
        backend = csms.store.transactions_table(limit=100)

    ok, refused = report.chargers
    assert report.failed and report.exit_code() == 1
    assert (ok.runs_completed, ok.steps_failed) == (2, 0)
    assert (refused.runs_completed, refused.steps_failed) == (0, 2)
    assert refused.failures == [
        f"run {n} step 2 (tap): card {charger_uid(2)} rejected by the station/backend"
        for n in (1, 2)]
    assert refused.boot_accepted and refused.sessions_started == 0
    assert [t["charge_point_id"] for t in backend].count(ok.charge_point_id) == 2
    assert refused.charge_point_id not in {t["charge_point_id"] for t in backend}
    text = render_report(report)
    assert "what failed:" in text and "rejected by the station/backend" in text


async def test_sessions_started_and_stopped_by_the_backend(tmp_path: Path) -> None:
    scenario = parse_scenario({"step": [
        {"action": "plug_in"}, {"action": "await_remote_start", "timeout_s": 20},
        {"action": "charge", "duration_s": 0.5, "power_w": 7400},
        {"action": "await_remote_stop", "timeout_s": 20}, {"action": "unplug"}]})

    async def backend_side(csms: object) -> None:
        """The backend starts a session once the vehicle is in, and stops it once charging."""
        from chargerfw.csms.server import RunningCsms

        assert isinstance(csms, RunningCsms)
        while True:
            statuses = await asyncio.to_thread(csms.store.connector_statuses, "FLEET-001")
            if 1 in statuses and statuses[1]["status"] == "Preparing":
                break
            await asyncio.sleep(0.05)
        assert await csms.ocpp.remote_start_transaction("FLEET-001", charger_uid(1), 1) \
            == "Accepted"
        while True:
            statuses = await asyncio.to_thread(csms.store.connector_statuses, "FLEET-001")
            if statuses[1]["status"] == "Charging":
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        tx = (await asyncio.to_thread(csms.store.transactions_table, 1))[0]
        assert await csms.ocpp.remote_stop_transaction("FLEET-001", tx["id"]) == "Accepted"

    async with bundled_csms(tmp_path, 1) as csms:
        backend_task = asyncio.create_task(backend_side(csms))
        report = await run_fleet(fast_settings(csms.ocpp_url, tmp_path, 1), scenario)
        await asyncio.wait_for(backend_task, 5)
        backend = csms.store.transactions_table(limit=5)
        profiles = csms.store.get_charge_point("FLEET-001")["feature_profiles"]

    assert not report.failed, render_report(report)
    charger = report.chargers[0]
    # After its boot the backend asks which OCPP feature profiles it supports (capabilities).
    assert charger.backend_calls == {"GetConfiguration": 1, "RemoteStartTransaction": 1,
                                     "RemoteStopTransaction": 1}
    assert profiles == "Core,LocalAuthListManagement,RemoteTrigger,Reservation,SmartCharging"
    assert charger.sessions_started == charger.sessions_stopped == 1
    assert len(backend) == 1 and backend[0]["stop_reason"] == "Remote"


async def test_state_dir_reused_counts_only_this_run_and_control_socket_answers(
        tmp_path: Path) -> None:
    from chargerfw import control

    scenario = parse_scenario({"step": [
        {"action": "plug_in"}, {"action": "tap"},
        {"action": "charge", "duration_s": 1, "power_w": 7400},
        {"action": "tap"}, {"action": "unplug"}]})
    settings = dataclasses.replace(fast_settings("ws://unused", tmp_path, 1),
                                   control_sockets=True)
    socket_path = tmp_path / "fleet" / "FLEET-001" / "control.sock"
    statuses: list[dict] = []

    async def ask_status() -> None:
        while not statuses:
            if socket_path.exists():
                with contextlib.suppress(control.ControlUnavailable, ConnectionError):
                    statuses.append(await asyncio.to_thread(control.call, socket_path, "status"))
            await asyncio.sleep(0.05)

    async with bundled_csms(tmp_path, 1) as csms:
        settings = dataclasses.replace(settings, csms_url=csms.ocpp_url)
        first = await run_fleet(settings, scenario)
        asker = asyncio.create_task(ask_status())
        second = await run_fleet(settings, scenario)
        await asyncio.wait_for(asker, 1)
        backend = csms.store.transactions_table(limit=5)

    assert statuses[0]["station"] == "FLEET-001" and statuses[0]["hardware"] == "sim"
    assert not first.failed and not second.failed, render_report(second)
    for report in (first, second):
        charger = report.chargers[0]
        assert charger.sessions_started == 1 and charger.frames_missed == 0
        assert charger.messages["BootNotification"].sent == 1
        assert charger.messages["StartTransaction"].sent == 1
    assert len(backend) == 2
    older, newer = sorted(backend, key=lambda t: t["id"])
    assert newer["meter_start"] >= older["meter_stop"]  # the meter kept counting on disk


async def test_random_mode_runs_sessions_until_the_duration(tmp_path: Path) -> None:
    from chargerfw.sim.fleet import RandomProfile

    quick = RandomProfile(idle_s=(0.1, 0.3), plug_to_tap_s=(0.1, 0.2),
                          tap_to_unplug_s=(0.1, 0.2), charge_s=(0.5, 1.0),
                          suspend_s=(0.2, 0.4))
    async with bundled_csms(tmp_path, 2) as csms:
        settings = dataclasses.replace(fast_settings(csms.ocpp_url, tmp_path, 2),
                                       duration_s=7.0, seed=42, random_profile=quick)
        report = await run_fleet(settings)
        backend = csms.store.transactions_table(limit=100)

    assert report.mode == "random" and not report.failed and report.exit_code() == 0
    assert 6.5 <= report.elapsed_s < 20
    for charger in report.chargers:
        assert charger.runs_completed >= 1, render_report(report)
        # Sessions cut off by the end of the run are stopped on the way out, so every one
        # the charger started is stopped and known to the backend.
        assert charger.sessions_started == charger.sessions_stopped >= 1
        ours = [t for t in backend if t["charge_point_id"] == charger.charge_point_id]
        assert len(ours) == charger.sessions_started
        assert all(t["meter_stop"] is not None for t in ours)
        assert charger.messages["StopTransaction"].confirmed == charger.sessions_started
