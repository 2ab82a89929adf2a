"""The durable outbox: strictly in order, offline first, retried after a CALLERROR, dead after
too many; the pump over a fake sender, and the 1.6 client over an in-memory link."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest
from fakes import meter_sample, wait_until
from ocpp_support import memory_client
from ocpp_testcsms import CsmsBehaviour, TestCsms

from chargerfw.ocpp.outbox import Delivered, OutboxPump, Refused, Undeliverable

pytestmark = pytest.mark.timeout(30)


async def test_outbox_replay_after_backend_outage(tmp_path):
    """Backend down in the middle of a session: messages queue on disk, then go out in order
    with the backend's transactionId, after the backend is back."""
    csms = TestCsms(CsmsBehaviour(first_tx_id=555), in_memory=True)
    await csms.start()
    async with memory_client(tmp_path, csms, keys_overrides={
            "MeterValueSampleInterval": "1"}) as client:
        await wait_until(lambda: client.online)
        client.update_meter(1, meter_sample(10))
        await csms.stop()
        await csms.drop_connections()
        await wait_until(lambda: not client.online)
        # Offline: the whole session happens without the backend.
        tx = client.start_transaction(1, "TAGX", 10)
        for wh in (20, 30, 40):
            client.update_meter(1, meter_sample(wh))
            client.sampler.make_due(1)
            client.sampler.sample_due()
        client.stop_transaction(1, 45, "EVDisconnected")
        queued = [m.action for m in client.store.outbox_pending()]
        assert queued[0] == "StartTransaction" and queued[-1] == "StopTransaction"
        assert queued.count("MeterValues") >= 3
        await csms.start()
        await csms.wait_for(lambda: csms.of("StopTransaction"), timeout=10)
        tx_actions = [a for a in csms.actions() if a in ("StartTransaction", "MeterValues",
                                                         "StopTransaction")]
        assert tx_actions == queued
        assert {r.payload["transactionId"] for r in csms.of("MeterValues")} == {555}
        assert csms.of("StopTransaction")[0].payload["transactionId"] == 555
        energies = [int(r.payload["meterValue"][0]["sampledValue"][0]["value"])
                    for r in csms.of("MeterValues")]
        assert energies == sorted(energies) and energies[-1] == 40
        assert client.store.transaction(tx.local_id).backend_tx_id == 555
        await csms.stop()


async def test_start_call_errors_retry_with_growing_interval_then_succeed(tmp_path):
    behaviour = CsmsBehaviour(start_errors=2)
    async with TestCsms(behaviour, in_memory=True) as csms, memory_client(tmp_path, csms, keys_overrides={
            "TransactionMessageRetryInterval": "1", "TransactionMessageAttempts": "3"}) as client:
        await wait_until(lambda: client.online)
        client.start_transaction(1, "TAG", 0)
        client.stop_transaction(1, 5, "Local")
        await csms.wait_for(lambda: csms.of("StopTransaction"), timeout=10)
        starts = [r for r in csms.received if r.action == "StartTransaction"]
        assert len(starts) == 3
        assert len({r.unique_id for r in starts}) == 1  # a resend keeps its unique id
        # TransactionMessageRetryInterval x number of failures so far: 1 s, then 2 s.
        gaps = [b.at - a.at for a, b in zip(starts, starts[1:], strict=False)]
        assert 0.9 < gaps[0] < 1.8 and 1.9 < gaps[1] < 3.0, gaps
        assert csms.of("StopTransaction")[0].payload["transactionId"] == 1000


async def test_start_refused_too_often_is_dead_lettered(tmp_path):
    behaviour = CsmsBehaviour(start_errors=2)
    async with TestCsms(behaviour, in_memory=True) as csms, memory_client(tmp_path, csms, keys_overrides={
            "TransactionMessageRetryInterval": "0", "TransactionMessageAttempts": "2"}) as client:
        await wait_until(lambda: client.online)
        tx = client.start_transaction(1, "TAG", 0)
        client.stop_transaction(1, 5, "Local")
        second = client.start_transaction(2, "TAG2", 0)
        await csms.wait_for(lambda: len(csms.of("StartTransaction")) == 3, timeout=10)
        await wait_until(lambda: client.store.outbox_head() is None)
        # The refused session's stop is never sent with a made-up id; the next session proceeds.
        assert csms.of("StopTransaction") == []
        assert [r.payload["idTag"] for r in csms.of("StartTransaction")] == ["TAG", "TAG", "TAG2"]
        assert client.store.transaction(tx.local_id).start_status == "Refused"
        assert client.store.transaction(second.local_id).backend_tx_id is not None


# -- the pump on its own ------------------------------------------------------------------------

class ScriptedSender:
    """An OutboxSender whose answers a test lists in advance (a Delivered or an exception)."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.sent: list[tuple[str, str]] = []
        self.delivered_calls: list[tuple[str, Delivered]] = []

    def request_for(self, message):
        if message.action != "StartTransaction" and message.backend_tx_id is None:
            raise Undeliverable(f"no transactionId for {message.seq}")
        return (message.action, message.unique_id)

    async def send(self, message, request):
        self.sent.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def delivered(self, message, answer):
        self.delivered_calls.append((message.action, answer))


@contextlib.asynccontextmanager
async def pumping(pump, sender):
    task = asyncio.create_task(pump.run(sender))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_pump_delivers_in_order_and_records_the_answers(store):
    tx = store.start_transaction(1, "TAG", 10, 1.0)
    store.enqueue_meter_values(tx.local_id, 1, [{"timestamp": "t", "sampledValue": []}])
    store.stop_transaction(tx.local_id, 20, 2.0, "Local")
    ids = [m.unique_id for m in store.outbox_pending()]
    sender = ScriptedSender(Delivered(backend_tx_id=77, start_status="Accepted",
                                      id_tag_info={"status": "Accepted"}),
                            Delivered(), Delivered(id_tag_info={"status": "Blocked"}))
    pump = OutboxPump(store, max_attempts=lambda: 3, retry_interval_s=lambda: 60)
    async with pumping(pump, sender):
        await wait_until(lambda: store.outbox_head() is None)
    assert sender.sent == list(zip(["StartTransaction", "MeterValues", "StopTransaction"], ids,
                                   strict=True))
    assert [action for action, _ in sender.delivered_calls] == [
        "StartTransaction", "MeterValues", "StopTransaction"]
    record = store.transaction(tx.local_id)
    assert (record.backend_tx_id, record.start_status) == (77, "Accepted")
    assert [(m.state, m.sends, m.attempts) for m in store.outbox_all()] == [("delivered", 1, 0)] * 3


async def test_pump_counts_refusals_defers_on_no_answer_and_drops_the_undeliverable(store):
    tx = store.start_transaction(1, "TAG", 10, 1.0)
    sender = ScriptedSender(Refused("InternalError: busy"), TimeoutError())
    pump = OutboxPump(store, max_attempts=lambda: 3, retry_interval_s=lambda: 0)
    async with pumping(pump, sender):
        await wait_until(lambda: store.outbox_head().last_error == "timeout")
        head = store.outbox_head()
        # The refusal counted as an attempt; no answer did not, and waits before resending.
        assert (head.attempts, head.sends) == (1, 2)
        assert head.next_attempt_at > time.time() + 4
    assert len(sender.sent) == 2

    # A stop for a transaction the backend never gave an id is never sent: dead at once.
    store.outbox_failed(head.seq, "refused", max_attempts=1, retry_interval_s=0)
    store.stop_transaction(tx.local_id, 20, 2.0, "Local")
    other = store.start_transaction(2, "TAG2", 0, 3.0)
    store.stop_transaction(other.local_id, 5, 4.0, "Local")
    stop_without_id = store.outbox_pending()[0]
    assert stop_without_id.action == "StopTransaction" and stop_without_id.backend_tx_id is None
    sender = ScriptedSender(Delivered(backend_tx_id=8), Delivered())
    async with pumping(pump, sender):
        await wait_until(lambda: store.outbox_head() is None)
    assert [action for action, _ in sender.sent] == ["StartTransaction", "StopTransaction"]
    dead = [m for m in store.outbox_all() if m.state == "dead"]
    assert [(m.action, m.sends) for m in dead][-1] == ("StopTransaction", 0)
    assert "no transactionId" in dead[-1].last_error
