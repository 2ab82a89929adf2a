"""The CSMS against the firmware's own OCPP 1.6J client (chargerfw.ocpp), security profile 1,
with an eMSP double receiving the OCPI side, and a backend restart mid-session.

(The backend itself never imports the firmware; only this test puts the two together.)
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import httpx
import pytest
from csms_doubles import (
    add_test_charger,
    csms_running,
    make_tariff,
    ocpi_auth,
    register_emsp,
    running_emsp,
)
from fakes import FakeStation, meter_sample, wait_until
from ocpp_support import running_client
from realstack import free_port

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(90)
PASSWORD = "s3cret-s3cret-s3cret"
V = "/ocpi/2.2.1"


def ok(response: httpx.Response, model: Any) -> Any:
    assert response.status_code == 200, response.text
    return m.Envelope[model].model_validate(response.json()).data


async def test_firmware_client_session_survives_a_backend_restart(db: str, tmp_path: Path
                                                                  ) -> None:
    ocpp_port, api_port = free_port(), free_port()
    station = FakeStation()
    async with running_emsp() as emsp, contextlib.AsyncExitStack() as first_backend:
        csms = await first_backend.enter_async_context(
            csms_running(db, ocpp_port=ocpp_port, api_port=api_port))
        await csms.db(csms.store.add_tariff, make_tariff("T1", energy=0.40, time_h=0.0,
                                                         flat=0.0, vat=0))
        await csms.db(add_test_charger, csms.store, "CP1", PASSWORD, "T1", "LOC1", 2)
        token_c = await register_emsp(csms, emsp)
        async with httpx.AsyncClient(base_url=csms.api_url) as api:
            put = await api.put(f"{V}/tokens/DE/EMS/04AA", headers=ocpi_auth(token_c), json={
                "country_code": "DE", "party_id": "EMS", "uid": "04AA", "type": "RFID",
                "contract_id": "DE-EMS-04AA", "issuer": "Test eMSP", "valid": True,
                "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"})
            assert put.status_code == 201
        async with running_client(tmp_path, csms.ocpp_url, station=station, profile=1,
                                  password=PASSWORD,
                                  keys_overrides={"MeterValueSampleInterval": "1"}
                                  ) as client:
            client.set_status(1, "Available")
            await wait_until(lambda: client.online)
            assert client.keys.get_int("HeartbeatInterval") == 300
            assert (await client.authorize("04AA"))["status"] == "Accepted"
            client.update_meter(1, meter_sample(5000))
            tx = client.start_transaction(1, "04AA", 5000)
            client.set_status(1, "Charging")
            client.update_meter(1, meter_sample(5600))
            client.sampler.make_due(1)
            client.sampler.sample_due()

            async def session_kwh() -> float:
                async with httpx.AsyncClient(base_url=csms.api_url) as api:
                    sessions = ok(await api.get(f"{V}/sessions",
                                                headers=ocpi_auth(token_c)),
                                  list[m.Session])
                return float(sessions[0].kwh) if sessions else -1.0

            for _ in range(300):
                if await session_kwh() == 0.6:
                    break
                await asyncio.sleep(0.02)
            assert await session_kwh() == 0.6

            # Backend restart: the charger carries on offline and delivers later.
            await first_backend.aclose()
            await wait_until(lambda: not client.online)
            client.update_meter(1, meter_sample(6500))
            client.sampler.make_due(1)
            client.sampler.sample_due()
            client.stop_transaction(1, 7000, "EVDisconnected")
            client.set_status(1, "Available")
            async with csms_running(db, ocpp_port=ocpp_port, api_port=api_port) as again:
                await wait_until(lambda: client.online, timeout=15)
                await wait_until(lambda: not client.store.outbox_pending(), timeout=15)
                backend_tx = client.store.transaction(tx.local_id).backend_tx_id
                stored = await again.db(again.store.get_transaction, backend_tx)
                assert (stored["meter_start"], stored["meter_stop"], stored["stop_reason"]) \
                    == (5000, 7000, "EVDisconnected")
                async with httpx.AsyncClient(base_url=again.api_url) as api:
                    cdrs = ok(await api.get(f"{V}/cdrs", headers=ocpi_auth(token_c)),
                              list[m.CDR])
                    assert len(cdrs) == 1
                    assert float(cdrs[0].total_energy) == 2.0
                    assert float(cdrs[0].total_cost.excl_vat) == pytest.approx(0.80)
                    sessions = ok(await api.get(f"{V}/sessions",
                                                headers=ocpi_auth(token_c)),
                                  list[m.Session])
                    assert [s.status for s in sessions] == ["COMPLETED"]

                    # A START_SESSION from the eMSP reaches the firmware as RemoteStart.
                    start = await api.post(f"{V}/commands/START_SESSION",
                                           headers=ocpi_auth(token_c), json={
                        "response_url": f"{emsp.base}/emsp/commands/START/1",
                        "token": {"country_code": "DE", "party_id": "EMS", "uid": "APP9",
                                  "type": "APP_USER", "contract_id": "DE-EMS-APP9",
                                  "issuer": "Test eMSP", "valid": True,
                                  "whitelist": "ALLOWED",
                                  "last_updated": "2026-01-01T00:00:00Z"},
                        "location_id": "LOC1", "evse_uid": "CP1-2"})
                    assert ok(start, m.CommandResponse).result == "ACCEPTED"
                result = await emsp.wait_for(lambda r: r.path == "/emsp/commands/START/1")
                assert result[0].body == {"result": "ACCEPTED"}
                assert ("remote_start", "APP9", 2, False) in station.calls
                posted = await emsp.wait_for(lambda r: r.path == "/emsp/cdrs")
                assert float(m.CDR.model_validate(posted[0].body).total_energy) == 2.0

