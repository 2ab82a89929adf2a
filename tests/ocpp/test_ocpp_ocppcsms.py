"""End to end against a central system someone else wrote: the ``ocpp-csms`` package (aiohttp
server, OCPP 1.6J), with security profile 1 (HTTP Basic) and a backend outage mid-session."""

from __future__ import annotations

import asyncio

import pytest
from fakes import FakeStation, meter_sample, wait_until
from ocpp_csms import (
    CentralSystem,
    MeterValuesEvent,
    TransactionStartedEvent,
    TransactionStoppedEvent,
)
from ocpp_support import running_client
from realstack import free_port

pytestmark = pytest.mark.timeout(60)

PASSWORD = "s3cret-s3cret-s3cret"


def make_csms(port: int = 0, auth: bool = True) -> tuple[CentralSystem, list]:
    events: list = []

    async def authenticate(charge_point_id: str, password: str | None) -> bool:
        return charge_point_id == "CP1" and password == PASSWORD

    csms = CentralSystem(host="127.0.0.1", port=port, authenticate=authenticate if auth else None,
                         heartbeat_interval=120, ping_interval=None)
    csms.add_listener(events.append)
    return csms, events


async def test_session_with_outage_against_ocpp_csms(tmp_path):
    station = FakeStation()
    csms, events = make_csms(free_port())
    await csms.async_start()
    port = csms.port
    url = f"ws://127.0.0.1:{port}/ocpp"
    try:
        async with running_client(tmp_path, url, station=station, profile=1, password=PASSWORD,
                                  keys_overrides={"MeterValueSampleInterval": "1"}) as client:
            client.set_status(1, "Available")
            await wait_until(lambda: client.online)
            cp = csms.charge_points["CP1"]
            await wait_until(lambda: 1 in cp.connectors)
            assert cp.boot.vendor == "chargerfw" and str(cp.connectors[1].status.value) == "Available"
            assert client.keys.get_int("HeartbeatInterval") == 120

            assert (await client.authorize("04AA"))["status"] == "Accepted"
            client.update_meter(1, meter_sample(5000))
            tx = client.start_transaction(1, "04AA", 5000)
            await wait_until(lambda: any(isinstance(e, TransactionStartedEvent) for e in events))
            client.update_meter(1, meter_sample(5100))
            client.sampler.make_due(1)
            client.sampler.sample_due()
            await wait_until(lambda: any(isinstance(e, MeterValuesEvent) for e in events))

            # The backend goes away mid-session; the session continues and ends offline.
            await csms.async_stop()
            await wait_until(lambda: not client.online)
            for wh in (5200, 5300):
                client.update_meter(1, meter_sample(wh))
                client.sampler.make_due(1)
                client.sampler.sample_due()
            client.stop_transaction(1, 5350, "EVDisconnected")
            assert len(client.store.outbox_pending()) == 3

            await csms.async_start()
            assert csms.port == port
            await wait_until(lambda: any(isinstance(e, TransactionStoppedEvent) for e in events),
                             timeout=15)

            # Commands from this backend reach the station and the configuration.
            config = await cp.async_get_configuration(["HeartbeatInterval", "Nope"])
            assert config.values["HeartbeatInterval"].value == "120"
            assert config.unknown_keys == ("Nope",)
            assert await cp.async_change_configuration("MeterValueSampleInterval", "30") == "Accepted"
            assert await cp.async_change_configuration("NumberOfConnectors", "9") == "Rejected"
            assert await cp.async_remote_start_transaction("04BB", connector_id=2) == "Accepted"
            assert client.keys.get_int("MeterValueSampleInterval") == 30
            stored_tx_id = client.store.transaction(tx.local_id).backend_tx_id

        started = [e.transaction for e in events if isinstance(e, TransactionStartedEvent)]
        stopped = [e.transaction for e in events if isinstance(e, TransactionStoppedEvent)]
        assert len(started) == 1 and len(stopped) == 1
        tx_id = started[0].transaction_id
        assert stored_tx_id == tx_id
        assert (stopped[0].transaction_id, stopped[0].meter_start, stopped[0].meter_stop,
                stopped[0].stop_reason) == (tx_id, 5000, 5350, "EVDisconnected")
        energy = [float(r.value) for e in events if isinstance(e, MeterValuesEvent)
                  for r in e.readings if r.measurand == "Energy.Active.Import.Register"]
        assert energy == [5100.0, 5200.0, 5300.0]
        assert {e.transaction_id for e in events if isinstance(e, MeterValuesEvent)} == {tx_id}
        assert ("remote_start", "04BB", 2, False) in station.calls
    finally:
        await csms.async_stop()


async def test_wrong_password_is_refused_and_retried(tmp_path):
    csms, events = make_csms()
    await csms.async_start()
    try:
        url = f"ws://127.0.0.1:{csms.port}/ocpp"
        async with running_client(tmp_path, url, profile=1, password="wrong-password-123") as client:
            await wait_until(lambda: client.connection.health.failed_attempts >= 2)
            assert "401" in (client.connection.health.last_error or "")
            assert not client.online and "CP1" not in csms.charge_points
            await asyncio.sleep(0)
    finally:
        await csms.async_stop()


async def test_sigkill_mid_session_checked_at_ocpp_csms(tmp_path):
    """The firmware process dies mid-session (SIGKILL) with meter values flowing; after the
    restart ocpp-csms has exactly one start and one stop (PowerLoss) with the right id, and
    a monotonic meter that ends at the stop value."""
    from test_ocpp_durability import run_child_until_killed

    from chargerfw.store import Store

    csms, events = make_csms(auth=False)  # the child station runs security profile 0
    await csms.async_start()
    try:
        url = f"ws://127.0.0.1:{csms.port}/ocpp"
        db = tmp_path / "state.db"
        # Runs ~1.5 s with MeterValueSampleInterval=1: at least one periodic MeterValues.
        started, _ = await run_child_until_killed(tmp_path, url, db, persisted_lines=250,
                                                  sample_interval="1")
        backend_id = int(started.split()[1])
        with Store(db) as store:
            (closed,) = store.recover_interrupted()
        async with running_client(tmp_path, url) as client:
            await wait_until(lambda: any(isinstance(e, TransactionStoppedEvent) for e in events),
                             timeout=15)
            await wait_until(lambda: client.store.outbox_head() is None)
        started_tx = [e.transaction for e in events if isinstance(e, TransactionStartedEvent)]
        stopped_tx = [e.transaction for e in events if isinstance(e, TransactionStoppedEvent)]
        assert [t.transaction_id for t in started_tx] == [backend_id]
        assert [(t.transaction_id, t.stop_reason, t.meter_stop) for t in stopped_tx] == [
            (backend_id, "PowerLoss", closed.meter_stop_wh)]
        energy = [float(r.value) for e in events if isinstance(e, MeterValuesEvent)
                  for r in e.readings if r.measurand == "Energy.Active.Import.Register"]
        assert energy, "no MeterValues reached the backend"
        assert energy == sorted(energy) and energy[0] >= 1000 and energy[-1] <= closed.meter_stop_wh
        assert {e.transaction_id for e in events if isinstance(e, MeterValuesEvent)} == {backend_id}
    finally:
        await csms.async_stop()
