"""``chargerfw run`` as a real subprocess on simulated hardware, driven through its control
socket: SIGTERM mid-session (StopTransaction reason Reboot at the backend, exit 0), and against
a CSMS someone else wrote (the ``ocpp-csms`` package) a session that survives a backend outage
and a session cut by SIGKILL, checked at the backend: one start and one stop per session, the
right ids, a monotonic meter, nothing lost."""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import wait_until
from ocpp.v16 import call
from ocpp_csms import (
    CentralSystem,
    MeterValuesEvent,
    TransactionStartedEvent,
    TransactionStoppedEvent,
)
from ocpp_testcsms import TestCsms
from runtime_helpers import (
    StationProcess,
    ctl,
    free_port,
    sim_station_config,
    wait_status,
)

from chargerfw.store import Store

pytestmark = pytest.mark.timeout(90)

TAG = "04C0FFEE"
PASSWORD = "sim-station-secret-1"


@pytest.fixture
def station_process(tmp_path: Path, short_dir: Path) -> Iterator[object]:
    started: list[StationProcess] = []

    def make(config_path: Path, env: dict[str, str] | None = None) -> StationProcess:
        proc = StationProcess(config_path, short_dir, tmp_path / "station.log", env)
        started.append(proc)
        return proc

    yield make
    for proc in started:  # only the processes this test started, by pid
        proc.kill_if_running()


async def charge(sock: Path) -> None:
    await ctl(sock, "sim.tap", uid=TAG)
    await ctl(sock, "sim.plug")
    await ctl(sock, "sim.charge")


async def test_sigterm_mid_session_ends_it_with_reboot(tmp_path, station_process):
    async with TestCsms() as csms:
        config_path, _ = sim_station_config(tmp_path, csms.url)
        proc = station_process(config_path)
        proc.start()
        await proc.wait_ready()
        await csms.wait_for(lambda: csms.of("StatusNotification"), timeout=15)
        await charge(proc.socket_path)
        await csms.wait_for(lambda: csms.of("MeterValues"), timeout=15)
        status = await ctl(proc.socket_path, "status")
        assert status["connectors"][0]["contactor_closed"] is True

        proc.signal(signal.SIGTERM)
        assert await proc.wait_exit() == 0
        stops = csms.of("StopTransaction")
        assert [s.payload["reason"] for s in stops] == ["Reboot"]
        assert stops[0].payload["transactionId"] == 1000  # the id the backend gave at the start
    log = (tmp_path / "station.log").read_text()
    # journald-friendly lines on stdout: level, event, fields; the password never appears.
    assert "level='info' event='station.ready'" in log
    assert "level='info' event='transaction.stopped'" in log and "reason='Reboot'" in log
    with Store(tmp_path / "state.db") as store:
        assert store.outbox_head() is None  # the Reboot stop was delivered before the exit
        (record,) = store.transactions()
        assert (record.state, record.stop_reason) == ("stopped", "Reboot")


async def test_sd_notify_watchdog_and_soft_reset_in_process(tmp_path, short_dir,
                                                             station_process):
    """READY after boot, WATCHDOG from the loop, a Soft reset restarts the runtime in the same
    process (a second BootNotification, READY again), SIGTERM: STOPPING and exit 0."""
    notify_path = short_dir / "notify.sock"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.setblocking(False)
    received: list[str] = []
    loop = asyncio.get_running_loop()

    async def collect() -> None:
        while True:
            received.append((await loop.sock_recv(notify, 4096)).decode())

    collector = asyncio.create_task(collect())
    try:
        async with TestCsms() as csms:
            config_path, _ = sim_station_config(tmp_path, csms.url)
            proc = station_process(config_path, {"NOTIFY_SOCKET": str(notify_path),
                                                 "WATCHDOG_USEC": "400000"})
            proc.start()
            await wait_until(lambda: any(m.startswith("READY=1") for m in received), 20,
                             "READY=1")
            await wait_until(lambda: sum(m == "WATCHDOG=1" for m in received) >= 3, 5,
                             "watchdog pings")
            pid = proc.proc.pid
            await csms.wait_for(lambda: csms.of("StatusNotification"), timeout=15)
            assert (await csms.server_side.call(call.Reset(type="Soft"))).status == "Accepted"
            await csms.wait_for(lambda: len(csms.of("BootNotification")) == 2, timeout=15)
            assert proc.proc.poll() is None and proc.proc.pid == pid  # the same process
            await wait_until(lambda: sum(m.startswith("READY=1") for m in received) == 2, 10,
                             "READY=1 after the soft reset")
            proc.signal(signal.SIGTERM)
            assert await proc.wait_exit() == 0
            await wait_until(lambda: "STOPPING=1" in received, 5, "STOPPING=1")
    finally:
        collector.cancel()
        notify.close()


def _energy(event: MeterValuesEvent) -> list[tuple[str, float]]:
    return [(str(r.timestamp), float(r.value)) for r in event.readings
            if r.measurand == "Energy.Active.Import.Register"]


async def test_outage_and_sigkill_mid_session_against_ocpp_csms(tmp_path, station_process):
    events: list = []

    async def authenticate(charge_point_id: str, password: str | None) -> bool:
        return charge_point_id == "CP1" and password == PASSWORD

    port = free_port()
    csms = CentralSystem(host="127.0.0.1", port=port, authenticate=authenticate,
                         heartbeat_interval=120, ping_interval=None)
    csms.add_listener(events.append)
    await csms.async_start()

    def of(kind: type) -> list:
        return [e for e in events if isinstance(e, kind)]

    try:
        config_path, _ = sim_station_config(tmp_path, f"ws://127.0.0.1:{port}/ocpp",
                                            password=PASSWORD)
        proc = station_process(config_path)
        proc.start()
        await proc.wait_ready()
        sock = proc.socket_path
        await wait_status(sock, lambda s: s["backend"]["online"], timeout=15)

        # Session A: the backend goes away in the middle of it and comes back.
        await charge(sock)
        await wait_until(lambda: of(TransactionStartedEvent) and of(MeterValuesEvent),
                         timeout=15, what="session A started with meter values")
        await csms.async_stop()
        await wait_status(sock, lambda s: not s["backend"]["online"], timeout=10)
        await wait_status(sock, lambda s: s["outbox"]["pending"] >= 2, timeout=10,
                          what="meter values queued offline")
        await ctl(sock, "sim.tap", uid=TAG)  # stopped offline: the same card may always stop
        await wait_status(sock, lambda s: s["connectors"][0]["status"] == "Finishing")
        await csms.async_start()
        assert csms.port == port
        await wait_until(lambda: of(TransactionStoppedEvent), timeout=20,
                         what="session A's stop delivered after the outage")

        # Session B (the vehicle is still plugged in): the firmware is killed in the middle.
        await ctl(sock, "sim.tap", uid=TAG)
        await wait_until(lambda: len(of(TransactionStartedEvent)) == 2, timeout=15)
        tx_b = of(TransactionStartedEvent)[1].transaction.transaction_id
        await wait_until(lambda: sum(e.transaction_id == tx_b for e in of(MeterValuesEvent)) >= 2,
                         timeout=15, what="session B meter values")
        proc.signal(signal.SIGKILL)
        assert await proc.wait_exit() == -signal.SIGKILL
        proc.start()  # same config, same store: the open session ends with PowerLoss
        await proc.wait_ready()
        await wait_until(lambda: len(of(TransactionStoppedEvent)) == 2, timeout=20,
                         what="session B's PowerLoss stop")
        await wait_status(sock, lambda s: s["outbox"]["pending"] == 0 and s["backend"]["online"])
        proc.signal(signal.SIGTERM)
        assert await proc.wait_exit() == 0
    finally:
        await csms.async_stop()

    started = [e.transaction for e in of(TransactionStartedEvent)]
    stopped = [e.transaction for e in of(TransactionStoppedEvent)]
    assert len(started) == 2 and len(stopped) == 2  # exactly one start and one stop each
    tx_a, tx_b = started[0].transaction_id, started[1].transaction_id
    assert tx_a != tx_b
    assert [(t.transaction_id, t.stop_reason) for t in stopped] == [
        (tx_a, "Local"), (tx_b, "PowerLoss")]

    with Store(tmp_path / "state.db") as store:
        records = sorted(store.transactions(), key=lambda r: r.local_id)
        assert [r.backend_tx_id for r in records] == [tx_a, tx_b]
        assert [r.stop_reason for r in records] == ["Local", "PowerLoss"]
        assert all(m.state == "delivered" for m in store.outbox_all())
        sent = {}
        for message in store.outbox_all():
            if message.action == "MeterValues":
                for value in message.payload["meterValue"]:
                    for sampled in value["sampledValue"]:
                        if sampled.get("measurand", "Energy.Active.Import.Register") == \
                                "Energy.Active.Import.Register":
                            sent.setdefault(message.backend_tx_id, set()).add(
                                float(sampled["value"]))

    # Nothing lost: every meter value the firmware queued reached the backend, with its tx id.
    received: dict[int, list[float]] = {}
    for event in of(MeterValuesEvent):
        received.setdefault(event.transaction_id, []).extend(v for _, v in _energy(event))
    assert set(received) == {tx_a, tx_b}
    assert {tx: set(values) for tx, values in received.items()} == sent
    # A monotonic meter: within each session, across the two, and up to each stop.
    for tx, transaction in ((tx_a, stopped[0]), (tx_b, stopped[1])):
        values = received[tx]
        assert values == sorted(values)
        assert transaction.meter_start <= values[0] and values[-1] <= transaction.meter_stop
    assert stopped[0].meter_stop <= started[1].meter_start
    assert records[1].meter_stop_wh == stopped[1].meter_stop
