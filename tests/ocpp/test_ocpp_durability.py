"""SIGKILL of a process holding an open transaction, then restart: exactly one StopTransaction
with reason PowerLoss, the last persisted meter reading and the backend's transactionId."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from fakes import wait_until
from ocpp_support import running_client
from ocpp_testcsms import CsmsBehaviour, TestCsms

from chargerfw.store import Store

pytestmark = pytest.mark.timeout(60)

CHILD = textwrap.dedent('''
    import asyncio, sys, time
    from chargerfw.drivers.types import MeterSample
    from chargerfw.ocpp.config_keys import ConfigurationKeys
    from chargerfw.ocpp.connection import OcppConnection
    from chargerfw.ocpp.station_port import BootInfo
    from chargerfw.ocpp.v16.client import OcppClient
    from chargerfw.store import Store

    async def main(url, db, sample_interval):
        store = Store(db)
        keys = ConfigurationKeys(store, number_of_connectors=1,
                                 overrides={"MeterValueSampleInterval": sample_interval})
        conn = OcppConnection(url, "CP1")
        client = OcppClient(store=store, keys=keys, connection=conn, boot=BootInfo("v", "m"),
                            connector_phases={1: 3}, tick_s=0.05, meter_persist_interval_s=0)
        runner = asyncio.create_task(client.run())
        while not client.online:
            await asyncio.sleep(0.01)
        tx = client.start_transaction(1, "KILLME", 1000)
        while store.transaction(tx.local_id).backend_tx_id is None:
            await asyncio.sleep(0.01)
        print("started", store.transaction(tx.local_id).backend_tx_id, flush=True)
        wh = 1000
        while True:
            wh += 7
            client.update_meter(1, MeterSample(timestamp=time.time(), energy_import_wh=wh))
            print("persisted", wh, flush=True)
            await asyncio.sleep(0.005)

    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
''')


async def _read_line(stream) -> str:
    """The child's next protocol line (its structured log lines share stdout)."""
    while True:
        line = await asyncio.wait_for(stream.readline(), 15)
        if not line:
            raise AssertionError("child exited early")
        text = line.decode().strip()
        if text.startswith(("started", "persisted")):
            return text


async def run_child_until_killed(tmp_path, url: str, db, persisted_lines: int = 20,
                                 sample_interval: str = "60") -> tuple[str, int]:
    """Run the child station against ``url`` until it has persisted some readings, then
    SIGKILL it. Returns its "started <id>" line and the last reading it reported persisted."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = await asyncio.create_subprocess_exec(
        sys.executable, str(script), url, str(db), sample_interval,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        started = await _read_line(child.stdout)
        last_printed = 0
        for _ in range(persisted_lines):
            last_printed = int((await _read_line(child.stdout)).split()[1])
    finally:
        os.kill(child.pid, signal.SIGKILL)  # only the process this test started
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    return started, last_printed


async def test_sigkill_mid_session_ends_in_exactly_one_powerloss_stop(tmp_path):
    db = tmp_path / "state.db"
    async with TestCsms(CsmsBehaviour(first_tx_id=9001)) as csms:
        started, last_printed = await run_child_until_killed(tmp_path, csms.url, db)
        assert started == "started 9001"

        with Store(db) as store:
            (open_tx,) = store.open_transactions()
            persisted = open_tx.last_meter_wh
            assert persisted >= last_printed  # printed only after the commit returned
            assert open_tx.backend_tx_id == 9001

        # Restart: recovery first (what the runtime does at start-up), then the client.
        with Store(db) as store:
            (closed,) = store.recover_interrupted()
            assert (closed.stop_reason, closed.meter_stop_wh) == ("PowerLoss", persisted)
            assert store.recover_interrupted() == []  # a second start-up closes nothing more
        async with running_client(tmp_path, csms.url) as client:
            await csms.wait_for(lambda: csms.of("StopTransaction"), timeout=10)
            await wait_until(lambda: client.store.outbox_head() is None)
            await asyncio.sleep(0.2)
        starts, stops = csms.of("StartTransaction"), csms.of("StopTransaction")
        assert len(starts) == 1 and len(stops) == 1
        stop = stops[0].payload
        assert stop["transactionId"] == 9001
        assert stop["reason"] == "PowerLoss"
        assert stop["meterStop"] == persisted >= starts[0].payload["meterStart"] == 1000


async def test_recovery_interrupted_midway_is_idempotent(tmp_path):
    """A crash during recovery itself: each transaction closes in its own commit, so the
    second run closes only the rest and no transaction gets two stops."""
    db = tmp_path / "state.db"
    with Store(db) as store:
        a = store.start_transaction(1, "A", 10, 1.0)
        b = store.start_transaction(2, "B", 20, 2.0)
        store.record_meter(b.local_id, 25, 3.0)
    script = tmp_path / "recover.py"
    # The child closes the first transaction, then dies by SIGKILL before the second.
    script.write_text(textwrap.dedent(f'''
        import os, signal
        from chargerfw.store import Store
        from chargerfw.store.transactions import Transactions
        orig = Transactions._close
        count = [0]
        def close_then_die(self, *args, **kwargs):
            if count[0] == 1:
                os.kill(os.getpid(), signal.SIGKILL)
            count[0] += 1
            return orig(self, *args, **kwargs)
        Transactions._close = close_then_die
        s = Store({str(db)!r})
        s.recover_interrupted()
    '''))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=30)
    assert proc.returncode == -signal.SIGKILL
    with Store(db) as store:
        assert [t.local_id for t in store.open_transactions()] == [b.local_id]
        store.recover_interrupted()
        stops = [m for m in store.outbox_pending() if m.action == "StopTransaction"]
        assert [(m.local_tx_id, m.payload["meterStop"], m.payload["reason"]) for m in stops] == [
            (a.local_id, 10, "PowerLoss"), (b.local_id, 25, "PowerLoss")]
