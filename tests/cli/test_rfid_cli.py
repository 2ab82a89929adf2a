"""`chargerfw rfid`: what authorization decides for a tag offline (local list, cache, keys), a
tap read from the reader directly, and a tap through the running service (a fake one on the
control socket)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from diag_support import FakeService, as_json, invoke, status_result

from chargerfw.control.api import Method, RfidNextReply
from chargerfw.station.auth import IdTagInfo
from chargerfw.station.enums import AuthorizationStatus

pytestmark = pytest.mark.timeout(30)


def test_rfid_decision_from_local_list_and_cache(station, store):
    future = datetime.now(UTC) + timedelta(days=30)
    store.local_list_apply(1, {"AABBCCDD": IdTagInfo(AuthorizationStatus.ACCEPTED, future,
                                                     "FLEET")}, full=True)
    store.cache_put("BLOCKED1", IdTagInfo(AuthorizationStatus.BLOCKED))
    listed = as_json(invoke("rfid", "-c", station, "--id-tag", "AABBCCDD", "--json"))
    assert listed["offline_decision"] == {"accepted": True, "status": "Accepted",
                                          "source": "local_list"}
    assert listed["local_list"]["parentIdTag"] == "FLEET"
    blocked = as_json(invoke("rfid", "-c", station, "--id-tag", "BLOCKED1", "--json"))
    assert blocked["offline_decision"]["accepted"] is False
    assert blocked["offline_decision"]["source"] == "cache"
    unknown = as_json(invoke("rfid", "-c", station, "--id-tag", "12345678", "--json"))
    assert unknown["offline_decision"]["source"] == "none"
    store.config_set("AllowOfflineTxForUnknownId", "true")
    allowed = invoke("rfid", "-c", station, "--id-tag", "12345678")
    assert allowed.exit_code == 0
    assert "ACCEPTED (Accepted, decided by offline_unknown)" in allowed.stdout


def test_rfid_waits_for_a_tap_on_the_reader(station, monkeypatch):
    from chargerfw.cli import rfid
    from chargerfw.drivers.readers.simulated import SimulatedReader

    class TappedReader(SimulatedReader):
        async def start(self, *, require_reader: bool = False) -> None:
            await super().start(require_reader=require_reader)
            import asyncio

            asyncio.get_running_loop().call_later(0.05, self.present, "04A1B2C3D4E5F6")

    plain = rfid.open_reader
    monkeypatch.setattr(rfid, "open_reader", lambda section, simulated=False: TappedReader())
    result = invoke("rfid", "-c", station, "--timeout", "5")
    assert result.exit_code == 0, result.output
    assert "UID        04:A1:B2:C3:D4:E5:F6  (7 bytes" in result.stdout
    assert "idTag      04A1B2C3D4E5F6" in result.stdout
    assert "offline    REFUSED" in result.stdout
    monkeypatch.setattr(rfid, "open_reader", plain)
    timeout = invoke("rfid", "-c", station, "--timeout", "0.2")  # plain sim reader: no tap
    assert timeout.exit_code == 1


def test_rfid_through_the_service(station, runtime_dir):
    tap = RfidNextReply(id_tag="04A1B2C3", reader="sim", uid="04A1B2C3")
    with FakeService(runtime_dir / "control.sock", {Method.RFID_NEXT: lambda request: tap}):
        result = invoke("rfid", "-c", station, "--json")
    assert result.exit_code == 0, result.output
    report = as_json(result)
    assert report["id_tag"] == "04A1B2C3" and report["reader"] == "sim"
    with FakeService(runtime_dir / "control.sock", {Method.STATUS: lambda r: status_result()}):
        missing = invoke("rfid", "-c", station)
    assert missing.exit_code == 3 and "rfid.next" in missing.stderr
