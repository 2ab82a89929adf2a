"""Connector statuses to the backend: flushed on shutdown, settled by MinimumStatusDuration;
the reporter over a fake sender, and the 1.6 client over an in-memory link."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

import pytest
from fakes import wait_until
from ocpp_support import memory_client
from ocpp_testcsms import TestCsms

from chargerfw.ocpp import status as status_module
from chargerfw.ocpp.status import ConnectorStatusReport, StatusReporter
from chargerfw.ocpp.v16.client import OcppClient
from chargerfw.timestamps import iso_utc

pytestmark = pytest.mark.timeout(30)


async def test_flush_waits_for_the_latest_statuses_while_online(tmp_path):
    # On SIGTERM the station flushes before closing: the backend must not keep showing the
    # connector as it was before the last change.
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        client.set_status(1, "Finishing")
        client.set_status(1, "Available")
        assert await client.flush(3) is True
        assert [r.payload["status"] for r in csms.of("StatusNotification")
                if r.payload["connectorId"] == 1][-1] == "Available"

        csms.behaviour.swallow.add("StatusNotification")  # a backend that never answers
        client.set_status(1, "Preparing")
        started = time.monotonic()
        assert await client.flush(0.5) is False
        assert 0.5 <= time.monotonic() - started < 5  # gave up at its timeout, not later


# -- MinimumStatusDuration ------------------------------------------------------------------

def statuses_of(csms: TestCsms, connector_id: int) -> list[str]:
    return [r.payload["status"] for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id]


def status_calls(csms: TestCsms, connector_id: int, status: str) -> list:
    return [r for r in csms.of("StatusNotification")
            if r.payload["connectorId"] == connector_id and r.payload["status"] == status]


async def online_and_available(client: OcppClient, csms: TestCsms) -> None:
    """A first status goes out at once whatever the duration: nothing to settle against."""
    client.set_status(1, "Available")
    await wait_until(lambda: client.online)
    await csms.wait_for(lambda: statuses_of(csms, 1) == ["Available"], timeout=3)


async def test_a_status_that_flips_back_within_the_duration_is_never_sent(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={"MinimumStatusDuration": "1"}) as client:
        await online_and_available(client, csms)
        client.set_status(1, "Preparing")  # e.g. a plug wiggled in and out
        await asyncio.sleep(0.3)
        client.set_status(1, "Available")
        await asyncio.sleep(1.3)  # past the duration of both changes
        assert statuses_of(csms, 1) == ["Available"]
        assert await client.flush(1) is True
        assert statuses_of(csms, 1) == ["Available"]


async def test_a_status_that_lasts_is_sent_once_after_the_duration(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={"MinimumStatusDuration": "1"}) as client:
        await online_and_available(client, csms)
        began = time.monotonic()
        began_wall = time.time()
        client.set_status(1, "Preparing")
        await asyncio.sleep(0.5)
        client.set_status(1, "Preparing")  # the same status again does not restart the clock
        await csms.wait_for(lambda: status_calls(csms, 1, "Preparing"), timeout=3)
        (sent,) = status_calls(csms, 1, "Preparing")
        assert sent.at - began >= 1.0
        # The timestamp says when the status began, not when it was found stable.
        assert sent.payload["timestamp"][:19] == iso_utc(began_wall)[:19]
        await asyncio.sleep(0.5)
        assert statuses_of(csms, 1) == ["Available", "Preparing"]


async def test_faulted_is_sent_at_once_and_its_recovery_after_the_duration(tmp_path):
    # Margins are wide (a 3 s duration, "at once" meaning well inside it) for a loaded CI.
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={"MinimumStatusDuration": "3"}) as client:
        await online_and_available(client, csms)
        client.set_status(1, "Preparing")
        await asyncio.sleep(0.1)
        faulted_at = time.monotonic()
        client.set_status(1, "Faulted", "GroundFailure")
        await csms.wait_for(lambda: status_calls(csms, 1, "Faulted"), timeout=2.5)
        (fault,) = status_calls(csms, 1, "Faulted")
        assert fault.at - faulted_at < 2.5 and fault.payload["errorCode"] == "GroundFailure"
        cleared_at = time.monotonic()
        client.set_status(1, "Available")
        await csms.wait_for(lambda: len(status_calls(csms, 1, "Available")) == 2, timeout=8)
        assert status_calls(csms, 1, "Available")[-1].at - cleared_at >= 3.0
        # The Preparing that the fault cut short never reached the backend.
        assert statuses_of(csms, 1) == ["Available", "Faulted", "Available"]


async def test_duration_zero_sends_every_change_at_once(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        assert client.keys.get_int("MinimumStatusDuration") == 0
        await online_and_available(client, csms)
        for count, status in enumerate(("Preparing", "Available", "Preparing"), start=2):
            changed_at = time.monotonic()
            client.set_status(1, status)
            await csms.wait_for(lambda n=count: len(statuses_of(csms, 1)) == n, timeout=3)
            assert csms.of("StatusNotification")[-1].at - changed_at < 3
        assert statuses_of(csms, 1) == ["Available", "Preparing", "Available", "Preparing"]


async def test_minimum_status_duration_changed_at_run_time(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await online_and_available(client, csms)

        async def change(uid: str, value: str) -> None:
            reply = await csms.send_raw(json.dumps([2, uid, "ChangeConfiguration", {
                "key": "MinimumStatusDuration", "value": value}]), uid)
            assert reply == [3, uid, {"status": "Accepted"}]

        await change("m1", "1")
        changed_at = time.monotonic()
        client.set_status(1, "Preparing")
        await csms.wait_for(lambda: status_calls(csms, 1, "Preparing"), timeout=3)
        assert status_calls(csms, 1, "Preparing")[0].at - changed_at >= 1.0

        # A longer duration holds a change back; setting 0 releases what was settling at once.
        await change("m2", "60")
        client.set_status(1, "Charging")
        await asyncio.sleep(0.3)
        assert "Charging" not in statuses_of(csms, 1)
        released_at = time.monotonic()
        await change("m3", "0")
        await csms.wait_for(lambda: status_calls(csms, 1, "Charging"), timeout=5)
        assert status_calls(csms, 1, "Charging")[0].at - released_at < 5  # not the 60 s
        assert statuses_of(csms, 1) == ["Available", "Preparing", "Charging"]


async def test_flush_sends_a_settling_status_without_waiting_out_the_duration(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={"MinimumStatusDuration": "60"}) as client:
        await online_and_available(client, csms)
        client.set_status(1, "Preparing")
        client.set_status(1, "Unavailable")  # the last status before shutting down
        started = time.monotonic()
        assert await client.flush(3) is True
        assert time.monotonic() - started < 5  # not the 60 s
        assert statuses_of(csms, 1) == ["Available", "Unavailable"]


# -- the reporter on its own --------------------------------------------------------------------

class Backend:
    """A SendStatus that records what it took; ``refuse`` reports are not taken, once each."""

    def __init__(self, refuse: int = 0) -> None:
        self.took: list[tuple[int, str, str]] = []
        self.refuse = refuse

    async def send(self, connector_id: int, report: ConnectorStatusReport) -> bool:
        if self.refuse:
            self.refuse -= 1
            return False
        self.took.append((connector_id, report.status, report.error_code))
        return True


@contextlib.asynccontextmanager
async def sending(reporter: StatusReporter, backend: Backend):
    task = asyncio.create_task(reporter.run_sender(backend.send))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_reporter_sends_each_change_in_order_once():
    reporter = StatusReporter(lambda: 0)
    backend = Backend()
    reporter.report(0, ConnectorStatusReport("Available"))
    reporter.report(1, ConnectorStatusReport("Available"))
    reporter.report(1, ConnectorStatusReport("Available"))  # the same again: nothing new
    async with sending(reporter, backend):
        await wait_until(lambda: not reporter.has_unsent)
        reporter.report(1, ConnectorStatusReport("Faulted", "GroundFailure"))
        await wait_until(lambda: len(backend.took) == 3)
    assert backend.took == [(0, "Available", "NoError"), (1, "Available", "NoError"),
                            (1, "Faulted", "GroundFailure")]


async def test_reporter_resends_what_the_backend_did_not_take(monkeypatch):
    monkeypatch.setattr(status_module, "RETRY_PAUSE_S", 0.01)
    reporter = StatusReporter(lambda: 0)
    backend = Backend(refuse=2)
    reporter.report(1, ConnectorStatusReport("Available"))
    async with sending(reporter, backend):
        await wait_until(lambda: backend.took)
    assert backend.took == [(1, "Available", "NoError")] and not reporter.has_unsent


async def test_reporter_settles_by_the_minimum_duration():
    reporter = StatusReporter(lambda: 60)
    backend = Backend()
    reporter.report(1, ConnectorStatusReport("Available"))  # a first status: stable at once
    reporter.report(1, ConnectorStatusReport("Preparing"))
    next_due = reporter.settle()
    assert next_due is not None and 59 < next_due <= 60
    reporter.report(1, ConnectorStatusReport("Available"))  # changed back: Preparing never goes
    assert reporter.settle() is None
    reporter.report(1, ConnectorStatusReport("Charging"))
    assert reporter.settle(everything=True) is None  # shutting down: stable at once
    async with sending(reporter, backend):
        await wait_until(lambda: not reporter.has_unsent)
    # Nothing was sending meanwhile (offline): only the latest stable report is left to send.
    assert backend.took == [(1, "Charging", "NoError")]


async def test_reporter_resends_everything_stable_on_a_new_link_and_the_current_on_request():
    reporter = StatusReporter(lambda: 60)
    backend = Backend()
    reporter.report(2, ConnectorStatusReport("Available"))
    reporter.report(1, ConnectorStatusReport("Available"))
    async with sending(reporter, backend):  # the first link
        await wait_until(lambda: len(backend.took) == 2)
    reporter.report(1, ConnectorStatusReport("Preparing"))  # settling for 60 s
    reporter.resend_all()  # a new link: by connector, what is stable
    async with sending(reporter, backend):
        await wait_until(lambda: len(backend.took) == 4)
        reporter.send_current(1)  # TriggerMessage: the settling status goes now
        await wait_until(lambda: len(backend.took) == 5)
    assert backend.took == [(2, "Available", "NoError"), (1, "Available", "NoError"),
                            (1, "Available", "NoError"), (2, "Available", "NoError"),
                            (1, "Preparing", "NoError")]


async def test_reporter_holds_a_connector_back_while_held_and_sends_the_others():
    reporter = StatusReporter(lambda: 0)
    backend = Backend()
    held = {1, 0}  # connector 0 (the charge point) is never held back
    for cid in (0, 1, 2):
        reporter.report(cid, ConnectorStatusReport("Available"))
    task = asyncio.create_task(reporter.run_sender(backend.send, held.__contains__))
    try:
        await wait_until(lambda: len(backend.took) == 2)
        await asyncio.sleep(status_module.HELD_RECHECK_S * 2)
        assert backend.took == [(0, "Available", "NoError"), (2, "Available", "NoError")]
        assert reporter.has_unsent
        held.clear()  # its StopTransaction went: connector 1's report follows on its own
        await wait_until(lambda: not reporter.has_unsent)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert backend.took[-1] == (1, "Available", "NoError")
