"""The technician's commands against a running station: the real runtime (in-process, simulated
hardware) against the test CSMS on loopback, the CLI as a separate `chargerfw` process talking
to it over the control socket, as on a charger."""

from __future__ import annotations

import json
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fakes import wait_until
from runtime_helpers import LiveStation, ctl, live_station, wait_status

from chargerfw.cli.service import trial_self_test
from chargerfw.station.faults import FaultKind

pytestmark = pytest.mark.timeout(60)

TAG = "04A1B2C3"


@pytest.fixture
async def station(tmp_path: Path) -> AsyncIterator[LiveStation]:
    async with live_station(tmp_path) as live:
        yield live


async def test_status_meter_refusal_and_bundle_during_a_session(station, tmp_path):
    runtime, sock, cli, csms = station
    code, out, err = await cli("status")
    assert code == 0, err
    assert "connector 1  Available  pilot A" in out and "backend    connected" in out

    await ctl(sock, "sim.tap", uid=TAG)
    await csms.wait_for(lambda: csms.of("Authorize"))
    await ctl(sock, "sim.plug")
    await ctl(sock, "sim.charge")
    await wait_status(sock, lambda s: s["connectors"][0]["transaction"]
                      and s["connectors"][0]["transaction"]["transaction_id"] is not None
                      and s["connectors"][0]["meter"]
                      and (s["connectors"][0]["meter"]["power_w"] or 0) > 0)

    code, out, err = await cli("status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert status["service"] == "running"
    connector = status["status"]["connectors"][0]
    assert connector["status"] == "Charging" and connector["transaction"]["id_tag"] == TAG

    code, out, _ = await cli("status")
    assert "connector 1  Charging  pilot C" in out and f"idTag {TAG}" in out

    code, out, err = await cli("meter", "--once", "--json")
    assert code == 0, err
    line = json.loads(out)
    assert line["source"] == "service"
    assert line["sample"]["power_w"] == pytest.approx(32 * 230 * 3)

    # The guarded test refuses while the vehicle charges; the contactor stays closed.
    code, out, err = await cli("test", "contactor", "--yes")
    assert code == 1 and "refused" in err and "transaction runs" in err
    assert runtime.board.connectors[1].contactor.commanded_closed

    await wait_until(lambda: csms.of("StartTransaction"), what="StartTransaction")
    await csms.wait_for(lambda: runtime.store.outbox_pending() == [], timeout=10)
    code, out, err = await cli("ocpp", "log", "--json")
    assert code == 0, err
    actions = [json.loads(r["frame"])[2] for r in json.loads(out)
               if r["direction"] == "out" and json.loads(r["frame"])[0] == 2]
    assert "BootNotification" in actions and "StartTransaction" in actions

    code, out, err = await cli("queue", "--all", "--json")
    assert code == 0, err
    # The start-up's security event, then the session.
    assert [(m["action"], m["payload"].get("type")) for m in json.loads(out)][:2] == [
        ("SecurityEventNotification", "StartupOfTheDevice"), ("StartTransaction", None)]

    bundle = tmp_path / "bundle.tar.gz"
    code, out, err = await cli("support-bundle", "-o", str(bundle))
    assert code == 0, err
    with tarfile.open(bundle) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/status.json"))
        bundled = json.loads(tar.extractfile(member).read())
    assert bundled["connectors"][0]["transaction"]["id_tag"] == TAG


async def test_welded_contactor_fault_and_technician_clear(station):
    runtime, sock, cli, csms = station
    await ctl(sock, "sim.weld")
    await wait_status(sock, lambda s: any(f["kind"] == "contactor_welded" for f in s["faults"]))
    code, out, err = await cli("faults", "--active", "--json")
    assert code == 0, err
    assert [(f["code"], f["connector_id"], f["needs_technician"]) for f in json.loads(out)] == [
        ("contactor_welded", 1, True)]
    code, out, err = await cli("faults", "clear", "contactor_welded")
    assert code == 1 and "still present" in err  # the mirror still reads closed
    await ctl(sock, "sim.repair")
    code, out, err = await cli("faults", "clear", "contactor_welded", "--json")
    assert code == 0, err
    assert json.loads(out)["via"] == "service"
    await wait_status(sock, lambda s: s["faults"] == [])
    code, out, err = await cli("selftest")
    assert "PASS  contactor 1 feedback" in out and "PASS  backend reachable" in out


async def test_the_self_test_of_a_release_on_trial(station):
    """What a new firmware release checks at its first start, on a healthy station and on one
    whose contactor reports welded."""
    runtime = station[0]
    check = trial_self_test(runtime)
    assert await check() == []
    runtime.local_safety.restore_latched_fault(FaultKind.CONTACTOR_WELDED, 1, "welded")
    await wait_until(lambda: runtime.connector_outputs(1).vendor_error_code is not None)
    assert await check() == ["contactor 1 feedback: contactor_welded"]
