"""SecurityEventNotification end to end: a critical security event reaches the backend with its
type, the time it happened and its techInfo; queued offline and sent after reconnecting; kept
across a restart of the station (store reopened) without loss or duplicate; a backend without
the security extension does not hold the outbox up. Over an in-memory link to the test CSMS."""

from __future__ import annotations

import asyncio
import threading

import pytest
from fakes import wait_until
from ocpp_support import memory_client
from ocpp_testcsms import CsmsBehaviour, TestCsms

from chargerfw.config.ocpp_keys import NOTIFY_ALL_SECURITY_EVENTS_KEY
from chargerfw.ocpp.security_log import (
    CRITICAL_EVENTS,
    FIRMWARE_UPDATED,
    INVALID_MESSAGES,
    RESET,
    STARTUP,
    TAMPER_DETECTED,
    record_security_event,
)
from chargerfw.ocpp.v16.frame_guard import ThrottledEvent
from chargerfw.store import Store, StoreError
from chargerfw.timestamps import iso_utc

pytestmark = pytest.mark.timeout(30)


def _sent(csms: TestCsms) -> list[tuple[str, str | None]]:
    return [(r.payload["type"], r.payload.get("techInfo"))
            for r in csms.of("SecurityEventNotification")]


def test_the_critical_events_are_the_whitepapers():
    assert CRITICAL_EVENTS == {
        "FirmwareUpdated", "SettingSystemTime", "StartupOfTheDevice", "ResetOrReboot",
        "SecurityLogWasCleared", "MemoryExhaustion", "TamperDetectionActivated"}


async def test_a_critical_event_reaches_the_backend_with_its_type_time_and_info(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        record_security_event(client.store, TAMPER_DETECTED, "tamper pin 17 high " + "x" * 300)
        record_security_event(client.store, INVALID_MESSAGES, "not critical: only logged")
        await csms.wait_for(lambda: csms.of("SecurityEventNotification"))
        logged = client.store.security_events()
        assert [e.type for e in logged] == [TAMPER_DETECTED, INVALID_MESSAGES]
        [sent] = csms.of("SecurityEventNotification")
        assert sent.payload == {"type": TAMPER_DETECTED, "timestamp": iso_utc(logged[0].at),
                                "techInfo": ("tamper pin 17 high " + "x" * 300)[:255]}
        # The non-critical one is in the log only.
        await asyncio.sleep(0.2)
        assert _sent(csms) == [(TAMPER_DETECTED, ("tamper pin 17 high " + "x" * 300)[:255])]


async def test_the_vendor_key_pushes_every_event(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={NOTIFY_ALL_SECURITY_EVENTS_KEY: "true"}) as client:
        await wait_until(lambda: client.online)
        record_security_event(client.store, INVALID_MESSAGES, "a frame that is not JSON")
        await csms.wait_for(lambda: csms.of("SecurityEventNotification"))
        assert _sent(csms) == [(INVALID_MESSAGES, "a frame that is not JSON")]


async def test_an_event_recorded_on_another_thread_goes_out_at_once(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        await asyncio.sleep(0.1)  # the outbox pump is idle, waiting to be woken
        worker = threading.Thread(target=record_security_event,
                                  args=(client.store, FIRMWARE_UPDATED, "1.2.3"))
        worker.start()
        worker.join()
        await csms.wait_for(lambda: csms.of("SecurityEventNotification"), timeout=5)
        assert _sent(csms) == [(FIRMWARE_UPDATED, "1.2.3")]


async def test_queued_offline_then_sent_in_order_with_the_time_they_happened(tmp_path):
    async with TestCsms(in_memory=True) as csms, memory_client(tmp_path, csms) as client:
        await wait_until(lambda: client.online)
        await csms.stop()
        await csms.drop_connections()
        await wait_until(lambda: not client.online)
        record_security_event(client.store, TAMPER_DETECTED, "first")
        record_security_event(client.store, RESET, "second")
        happened = [e.at for e in client.store.security_events()]
        assert [m.action for m in client.store.outbox_pending()] == [
            "SecurityEventNotification"] * 2
        await asyncio.sleep(0.3)
        await csms.start()
        await csms.wait_for(lambda: len(csms.of("SecurityEventNotification")) == 2)
        assert _sent(csms) == [(TAMPER_DETECTED, "first"), (RESET, "second")]
        stamps = [r.payload["timestamp"] for r in csms.of("SecurityEventNotification")]
        assert stamps == [iso_utc(at) for at in happened]
        await wait_until(lambda: client.store.outbox_head() is None)


async def test_a_restart_loses_and_repeats_nothing(tmp_path):
    # Recorded while the station had no link at all (say at start-up, before the client ran),
    # then the process ends.
    with Store(tmp_path / "state.db") as store:
        record_security_event(store, STARTUP, "chargerfw 1.0")
        record_security_event(store, RESET, "Hard reset")
    async with TestCsms(in_memory=True) as csms:
        async with memory_client(tmp_path, csms) as client:
            await csms.wait_for(lambda: len(csms.of("SecurityEventNotification")) == 2)
            await wait_until(lambda: client.store.outbox_head() is None)
        # The second start (same store) sends only its own new event.
        async with memory_client(tmp_path, csms) as client:
            await wait_until(lambda: client.online)
            record_security_event(client.store, STARTUP, "chargerfw 1.0 again")
            await csms.wait_for(lambda: len(csms.of("SecurityEventNotification")) >= 3)
            await asyncio.sleep(0.2)
        assert _sent(csms) == [(STARTUP, "chargerfw 1.0"), (RESET, "Hard reset"),
                               (STARTUP, "chargerfw 1.0 again")]


def test_the_log_entry_and_its_notification_commit_together(tmp_path, monkeypatch):
    import chargerfw.store.security_log as store_security_log

    def refuse(*_: object) -> int:
        raise StoreError("outbox refused")

    monkeypatch.setattr(store_security_log, "enqueue_notification", refuse)
    with Store(tmp_path / "state.db") as store:
        record_security_event(store, TAMPER_DETECTED, "opened")  # logged, never raised
        assert store.security_events() == []
        assert store.outbox_pending() == []
        record_security_event(store, INVALID_MESSAGES, "not notified: no outbox row needed")
        assert [e.type for e in store.security_events()] == [INVALID_MESSAGES]


async def test_a_backend_without_the_security_extension_does_not_hold_up_the_outbox(tmp_path):
    behaviour = CsmsBehaviour(refuse_security_events=True)
    async with TestCsms(behaviour, in_memory=True) as csms, memory_client(
            tmp_path, csms, keys_overrides={"TransactionMessageRetryInterval": "60"}) as client:
        await wait_until(lambda: client.online)
        record_security_event(client.store, TAMPER_DETECTED, "opened")
        client.start_transaction(1, "TAG1", 0)
        await csms.wait_for(lambda: csms.of("StartTransaction"), timeout=5)
        assert len(csms.of("SecurityEventNotification")) == 1  # refused once, not retried
        [dead] = [m for m in client.store.outbox_all() if m.state == "dead"]
        assert dead.action == "SecurityEventNotification"
        assert dead.last_error.startswith("NotSupported")


def test_a_throttled_event_counts_what_it_did_not_record(tmp_path):
    now = [0.0]
    with Store(tmp_path / "state.db") as store:
        throttled = ThrottledEvent(store, INVALID_MESSAGES, every_s=60.0, clock=lambda: now[0])
        assert throttled.occurred("first")
        now[0] = 30.0
        assert not throttled.occurred("second")
        assert not throttled.occurred("third")
        now[0] = 61.0
        assert throttled.occurred("fourth")
        assert [e.tech_info for e in store.security_events()] == [
            "first", "fourth (and 2 more since the last report)"]
