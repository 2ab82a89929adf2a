"""The whole chain, RFID: an eMSP pushes tokens over OCPI, a card is tapped at the real firmware
on simulated hardware, the backend decides the OCPP Authorize by that token (or asks the eMSP
in real time), the session shows ACTIVE in OCPI with kwh growing, and the CDR the eMSP
receives bills exactly the meter delta under the tariff. Run on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from chain_helpers import (
    EVSE_UID,
    LOCATION,
    TARIFF,
    Chain,
    ocpp_exchanges,
    running_chain,
    token_body,
)
from fakes import wait_until
from runtime_helpers import ctl

from chargerfw.csms.ocpi import models as m

pytestmark = pytest.mark.timeout(60)

CARD = "04A1B2C3D4"  # pushed by the eMSP, whitelist ALLOWED
REALTIME_CARD = "04C0FFEE01"  # pushed with whitelist NEVER: always asked of the eMSP
UNKNOWN_CARD = "04DEAD0001"  # nobody knows it
ENERGY = "Energy.Active.Import.Register"

# Prices large enough that a few seconds at 22 kW cost well above the 0.0001 rounding.
ENERGY_PER_KWH = Decimal("12.00")
TIME_PER_HOUR = Decimal("36.00")
FLAT = Decimal("1.50")
VAT = Decimal("21")


def authorize_answer(chain: Chain, uid: str) -> str | None:
    """The idTagInfo.status the backend answered to the firmware's last Authorize of uid."""
    exchanges = [e for e in ocpp_exchanges(chain.runtime, "Authorize")
                 if e.direction == "out" and e.request == {"idTag": uid}]
    if not exchanges or exchanges[-1].response is None:
        return None
    return str(exchanges[-1].response["idTagInfo"]["status"])


def realtime_requests(chain: Chain, uid: str) -> list[str]:
    return [r.path for r in chain.emsp.received
            if r.path == f"/emsp/tokens/{uid}/authorize"]


def ocpp_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def energy_readings(chain: Chain) -> list[tuple[datetime, int]]:
    """(timestamp, Wh) of every energy register reading the firmware sent in MeterValues."""
    readings = []
    for exchange in ocpp_exchanges(chain.runtime, "MeterValues"):
        for meter_value in exchange.request["meterValue"]:
            for sampled in meter_value["sampledValue"]:
                if sampled.get("measurand", ENERGY) == ENERGY and not sampled.get("phase"):
                    scale = 1000 if sampled.get("unit") == "kWh" else 1
                    readings.append((ocpp_time(meter_value["timestamp"]),
                                     round(float(sampled["value"]) * scale)))
    return readings


def seconds_with_energy_flowing(began: datetime, meter_start: int,
                                readings: list[tuple[datetime, int]], ended: datetime,
                                meter_stop: int) -> float:
    """OCPI TIME is time charging: the intervals between readings (in whole Wh) in which
    the register rose."""
    points = [(began, meter_start)]
    for stamp, wh in sorted(readings):
        if began < stamp < ended and stamp > points[-1][0] and points[-1][1] <= wh <= meter_stop:
            points.append((stamp, wh))
    points.append((ended, meter_stop))
    return sum((t1 - t0).total_seconds() for (t0, e0), (t1, e1) in pairwise(points)
               if e1 > e0)


async def test_tokens_from_the_emsp_decide_taps_and_the_cdr_bills_the_meter_delta(
        db: str, tmp_path: Path) -> None:
    async with running_chain(db, tmp_path, energy_per_kwh=float(ENERGY_PER_KWH),
                             time_per_hour=float(TIME_PER_HOUR), flat=float(FLAT),
                             vat=float(VAT)) as chain:
        await chain.push_token(CARD, "ALLOWED")
        await chain.push_token(REALTIME_CARD, "NEVER")
        chain.emsp.authorize_answers[REALTIME_CARD] = m.AuthorizationInfo.model_validate({
            "allowed": "ALLOWED", "token": token_body(REALTIME_CARD, "NEVER"),
            "authorization_reference": "RT-REF-1"}).model_dump(mode="json", exclude_none=True)

        # A card nobody holds, routed to the eMSP by its uid: the backend asks the eMSP in
        # real time, which does not know it either -> Invalid at the charger, nothing starts.
        await chain.csms.db(chain.csms.store.set_token_route, UNKNOWN_CARD[:6], "DE", "EMS")
        assert await chain.tap(UNKNOWN_CARD) == "tag.rejected"
        assert authorize_answer(chain, UNKNOWN_CARD) == "Invalid"
        assert realtime_requests(chain, UNKNOWN_CARD) == [
            f"/emsp/tokens/{UNKNOWN_CARD}/authorize"]
        assert (await ctl(chain.sock, "status"))["connectors"][0]["status"] == "Available"

        # A NEVER token is always decided by the eMSP in real time: here it says ALLOWED.
        assert await chain.tap(REALTIME_CARD) == "tag.authorized"
        assert authorize_answer(chain, REALTIME_CARD) == "Accepted"
        assert len(realtime_requests(chain, REALTIME_CARD)) == 1
        assert await chain.tap(REALTIME_CARD) == "tag.cancelled"  # changed their mind
        await chain.connector(lambda c: c["status"] == "Available", "Available again")

        # The ALLOWED card is decided from the pushed token, without asking the eMSP.
        assert await chain.tap(CARD) == "tag.authorized"
        assert authorize_answer(chain, CARD) == "Accepted"
        assert realtime_requests(chain, CARD) == []
        await ctl(chain.sock, "sim.plug")
        await ctl(chain.sock, "sim.charge")
        charging = await chain.connector(
            lambda c: c["status"] == "Charging" and c["transaction"]
            and c["transaction"]["transaction_id"] is not None, "charging, tx confirmed")
        start = ocpp_exchanges(chain.runtime, "StartTransaction")
        assert [(e.request["idTag"], e.response["idTagInfo"]["status"]) for e in start] == [
            (CARD, "Accepted")]
        await chain.evse_status("CHARGING")

        # ACTIVE in OCPI, kwh growing between two reads of GET /sessions.
        async def active_kwh(above: Decimal) -> Decimal | None:
            sessions = await chain.sessions()
            assert len(sessions) == 1
            session = sessions[0]
            assert (session.status, session.auth_method, session.cdr_token.uid,
                    session.location_id, session.evse_uid) == (
                "ACTIVE", "WHITELIST", CARD, LOCATION, EVSE_UID)
            return session.kwh if session.kwh > above else None

        first = await wait_until(lambda: active_kwh(Decimal(0)), what="kwh above zero", interval=0.1)
        second = await wait_until(lambda: active_kwh(first), what="kwh growing", interval=0.1)
        assert second > first > 0
        put = await chain.wait_pushed(lambda r: r.path.startswith("/emsp/sessions/NL/CFW/")
                                      and r.method == "PUT")
        pushed_session = m.Session.model_validate(put[0].body)
        assert (pushed_session.status, pushed_session.cdr_token.uid) == ("ACTIVE", CARD)
        await chain.wait_pushed(lambda r: r.path == put[0].path and r.method == "PATCH"
                                and float(r.body["kwh"]) > 0)

        # The battery is full: the vehicle stops drawing but stays plugged in. That is
        # parking, not charging, for the TIME price; wait for two readings showing it.
        await ctl(chain.sock, "sim.stop_charging")
        await chain.connector(lambda c: c["status"] == "SuspendedEV", "SuspendedEV")
        readings = len(energy_readings(chain))
        await wait_until(lambda: len(energy_readings(chain)) >= readings + 2,
                         what="meter values while the vehicle is full")

        # The same card again stops the session; the CDR follows.
        assert await chain.tap(CARD) == "tag.stopped_session"
        posted = await chain.wait_pushed(lambda r: r.path == "/emsp/cdrs"
                                         and r.method == "POST")
        assert len(posted) == 1
        pushed_cdr = m.CDR.model_validate(posted[0].body)
        await ctl(chain.sock, "sim.unplug")
        await chain.connector(lambda c: c["status"] == "Available", "Available after unplug")
        await chain.evse_status("AVAILABLE")

        # The firmware's own record of the session, and the backend's.
        assert chain.runtime.store is not None
        [record] = chain.runtime.store.transactions()
        assert record.state == "stopped" and record.id_tag == CARD
        assert record.backend_tx_id == charging["transaction"]["transaction_id"]
        meter_delta_wh = record.meter_stop_wh - record.meter_start_wh
        assert meter_delta_wh > 0
        backend_tx = await chain.csms.db(chain.csms.store.get_transaction,
                                         record.backend_tx_id)
        assert (backend_tx["meter_start"], backend_tx["meter_stop"]) == (
            record.meter_start_wh, record.meter_stop_wh)

        [cdr] = await chain.cdrs()
        assert cdr.id == pushed_cdr.id and cdr.total_cost == pushed_cdr.total_cost
        assert cdr.total_energy == Decimal(meter_delta_wh) / 1000 == pushed_cdr.total_energy
        assert sum(d.volume for p in cdr.charging_periods for d in p.dimensions
                   if d.type == "ENERGY") == cdr.total_energy
        assert (cdr.cdr_token.uid, cdr.auth_method, cdr.cdr_location.evse_uid,
                cdr.currency) == (CARD, "WHITELIST", EVSE_UID, "EUR")
        assert [t.id for t in cdr.tariffs or []] == [TARIFF]

        # The cost, worked out here from the tariff and what the firmware sent: energy per
        # kWh + time charging per hour (step 1 s: every started second) + flat, VAT on each.
        [stop] = ocpp_exchanges(chain.runtime, "StopTransaction")
        began = ocpp_time(start[0].request["timestamp"])
        ended = ocpp_time(stop.request["timestamp"])
        session_s = (ended - began).total_seconds()
        charging_s = seconds_with_energy_flowing(
            began, start[0].request["meterStart"], energy_readings(chain), ended,
            stop.request["meterStop"])
        assert 0 < charging_s < session_s - 1.0  # the full vehicle parked for 2 readings
        billed_s = math.ceil(charging_s)
        assert float(cdr.total_time) == pytest.approx(session_s / 3600, abs=1e-6)
        assert float(cdr.total_parking_time or 0) == pytest.approx(
            (session_s - charging_s) / 3600, abs=1e-6)
        energy_cost = ENERGY_PER_KWH * Decimal(meter_delta_wh) / 1000
        time_cost = TIME_PER_HOUR * Decimal(billed_s) / 3600
        excl = energy_cost + time_cost + FLAT
        incl = excl * (1 + VAT / 100)
        assert float(cdr.total_cost.excl_vat) == pytest.approx(float(excl), abs=2e-4)
        assert float(cdr.total_cost.incl_vat) == pytest.approx(float(incl), abs=3e-4)
        assert float(cdr.total_energy_cost.excl_vat) == pytest.approx(float(energy_cost),
                                                                      abs=1e-4)
        assert float(cdr.total_time_cost.excl_vat) == pytest.approx(float(time_cost), abs=1e-4)
        assert float(cdr.total_fixed_cost.excl_vat) == float(FLAT)

        # The session is COMPLETED with the same energy and cost.
        [session] = await chain.sessions()
        assert (session.status, session.kwh) == ("COMPLETED", cdr.total_energy)
        assert session.total_cost == cdr.total_cost

