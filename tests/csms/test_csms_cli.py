"""`chargerfw csms` administration commands and `serve` as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from csms_doubles import (
    NEW_LOCATION_OPTIONS,
    csms_running,
    ocpi_auth,
    register_emsp,
    run_csms_cli,
    running_emsp,
    sim_charger,
)
from websockets.sync.client import connect

from chargerfw.csms import billing
from chargerfw.csms.db import create_db_engine
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import AuthDecision, CpoIdentity, Party, StartRequest, Store

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
LOCATION = NEW_LOCATION_OPTIONS
run = run_csms_cli


def test_register_price_and_list(db: str) -> None:
    code, out = run("tariff", "add", "T1", "--db", db, "--energy", "0.30", "--time", "1.20",
                    "--flat", "0.50", "--vat", "21")
    assert code == 0, out
    code, out = run("charger", "add", "CP1", "--db", db, "--password", "pw", *LOCATION,
                    "--evse", "CP1-A=NL*CFW*E1", "--evse", "CP1-B", "--standard",
                    "IEC_62196_T2_COMBO", "--power-type", "DC", "--max-voltage", "920",
                    "--max-amperage", "200", "--format", "CABLE", "--tariff", "T1")
    assert code == 0, out
    assert "CP1-A, CP1-B" in out
    store = Store(create_db_engine(db), CpoIdentity())
    location = m.Location.model_validate(store.get_location("LOC1"))
    # An EVSE given without an evse_id is named in eMI3 form after its uid.
    assert [(e.uid, e.evse_id) for e in location.evses] == [("CP1-A", "NL*CFW*E1"),
                                                            ("CP1-B", "NL*CFW*ECP1*B")]
    conn = location.evses[0].connectors[0]
    assert (conn.standard, conn.format, conn.power_type, conn.max_voltage, conn.max_amperage,
            conn.tariff_ids) == ("IEC_62196_T2_COMBO", "CABLE", "DC", 920, 200, ["T1"])
    assert store.evse_for_connector("CP1", 2)["uid"] == "CP1-B"
    assert "pw" not in store.get_charge_point("CP1")["password_hash"]
    code, out = run("charger", "list", "--db", db)
    assert code == 0 and "CP1-A(1:UNKNOWN) CP1-B(2:UNKNOWN)" in out and "basic" in out
    code, out = run("charger", "list", "--db", db, "--json")
    listed = json.loads(out)
    assert [e["uid"] for e in listed[0]["evses"]] == ["CP1-A", "CP1-B"]
    assert listed[0]["password"] is True and "password_hash" not in listed[0]

    decision = AuthDecision("Accepted", "WHITELIST", "DE", "EMS", "RFID", "DE-EMS-1")
    tx, _ = store.start_transaction(StartRequest("CP1", 1, "TAG1", 0, T0), decision)
    store.stop_transaction("CP1", tx["id"], 10_000, T0 + timedelta(hours=1), "Local",
                           [billing.Sample(T0 + timedelta(minutes=30),
                                           billing.ENERGY_REGISTER, "", 5000.0)])
    assert store.build_due_cdrs() == 1  # what the backend does after the stop
    store.engine.dispose()

    code, out = run("sessions", "--db", db)
    assert code == 0 and "COMPLETED" in out and "10.000" in out and "TAG1" in out
    code, out = run("sessions", "--db", db, "--json")
    assert m.Session.model_validate(json.loads(out)[0]).status == "COMPLETED"
    code, out = run("cdrs", "--db", db)
    assert code == 0 and "10.000" in out
    assert "4.70 EUR" in out  # 10 kWh * 0.30 + 1 h * 1.20 + 0.50
    assert "5.69 EUR" in out  # incl. 21 % VAT
    code, out = run("cdrs", "--db", db, "--json")
    cdr = m.CDR.model_validate(json.loads(out)[0])
    assert float(cdr.total_energy) == 10.0


@pytest.mark.timeout(60)
async def test_charger_add_attaches_an_auto_registered_charger(db: str) -> None:
    async with running_emsp() as emsp, csms_running(db, auto_register=True) as csms:
        await register_emsp(csms, emsp)
        await csms.db(csms.store.put_token, m.Token.model_validate({
            "country_code": "DE", "party_id": "EMS", "uid": "TAG1", "type": "RFID",
            "contract_id": "DE-EMS-TAG1", "issuer": "Test eMSP", "valid": True,
            "whitelist": "ALWAYS", "last_updated": "2026-01-01T00:00:00Z"}), None)
        assert (await asyncio.to_thread(run, "tariff", "add", "T1", "--db", db, "--energy",
                                        "0.30"))[0] == 0
        async with sim_charger(csms, "NEW1", "pw") as charger:
            await charger.boot()
            await charger.status(1, "Charging")
            early = await charger.start_tx(1, "TAG1", 1000, T0)
            assert await csms.db(csms.store.get_location, "LOC1") is None

            # The operator attaches it while it charges (no password flag: it keeps "pw").
            code, out = await asyncio.to_thread(run, "charger", "add", "NEW1", "--db", db,
                                                *LOCATION, "--tariff", "T1")
            assert code == 0, out
            assert out.strip() == "attached NEW1 at LOC1 with 1 EVSE(s): NEW1-1"
            location = m.Location.model_validate(
                await csms.db(csms.store.get_location, "LOC1"))
            assert [(e.uid, e.status) for e in location.evses] == [("NEW1-1", "CHARGING")]
            put = await emsp.wait_for(lambda r: r.method == "PUT"
                                      and r.path == "/emsp/locations/NL/CFW/LOC1")
            assert [e.uid for e in m.Location.model_validate(put[0].body).evses] == ["NEW1-1"]

            # The session that began before goes on and ends; the next is priced by T1.
            await charger.meter(1, early.transaction_id, T0 + timedelta(minutes=10), 3000)
            stopped = await charger.stop_tx(early.transaction_id, 4000,
                                            T0 + timedelta(minutes=20), "TAG1")
            assert stopped.id_tag_info["status"] == "Accepted"
            tx = await csms.db(csms.store.get_transaction, early.transaction_id)
            assert (tx["meter_stop"], tx["stop_time"]) == (4000, T0 + timedelta(minutes=20))
            later = await charger.start_tx(1, "TAG1", 4000, T0 + timedelta(hours=1))
            await charger.stop_tx(later.transaction_id, 14_000, T0 + timedelta(hours=2), "TAG1")
            # Its CDR, built after the stop was answered, has reached the eMSP.
            await emsp.wait_for(lambda r: r.path.startswith("/emsp/cdrs"))
        code, out = await asyncio.to_thread(run, "cdrs", "--db", db, "--json")
        [cdr] = [m.CDR.model_validate(c) for c in json.loads(out)]
        assert cdr.cdr_location.evse_uid == "NEW1-1" and float(cdr.total_energy) == 10.0
        assert float(cdr.total_cost.excl_vat) == pytest.approx(3.0)
        # It still has to show its password.
        async with sim_charger(csms, "NEW1", "pw") as charger:
            assert (await charger.boot()).status == "Accepted"

        code, out = await asyncio.to_thread(run, "charger", "add", "NEW1", "--db", db,
                                            "--no-password", "--location-id", "LOC2",
                                            *LOCATION[2:])
        assert code == 2 and "has EVSE(s) already (NEW1-1 at location 'LOC1')" in out
        assert await csms.db(csms.store.get_location, "LOC2") is None
        row = await csms.db(csms.store.get_charge_point, "NEW1")
        assert row["location_id"] == "LOC1" and row["password_hash"] is not None


def test_bad_admin_input_is_refused_with_a_message(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    code, out = run("charger", "add", "CP1", "--db", db, "--password", "pw",
                    "--location-id", "LOC1")
    assert code == 2 and "--address" in out and "--coordinates" in out
    code, out = run("charger", "add", "CP1", "--db", db, "--password", "pw", *LOCATION,
                    "--standard", "SCART")
    assert code == 2 and "standard" in out
    code, out = run("charger", "add", "CP1", "--db", db, "--no-password", *LOCATION[:-4],
                    "--coordinates", "north", "--time-zone", "UTC")
    assert code == 2 and "coordinates" in out
    code, out = run("charger", "add", "CP1", "--db", db, *LOCATION)
    assert code == 2 and "--password" in out
    code, out = run("charger", "add", "CP1", "--db", db, "--no-password", *LOCATION,
                    "--tariff", "NOPE")
    assert code == 2 and "unknown tariff" in out
    code, out = run("tariff", "add", "T1", "--db", db)
    assert code == 2 and "--energy" in out
    code, out = run("tariff", "add", "T1", "--db", db, "--energy", "0.3", "--currency", "EURO")
    assert code == 2 and "currency" in out
    code, out = run("sessions", "--db", "mysql://x@y/z")
    assert code == 2 and "unsupported database URL" in out
    store = Store(create_db_engine(db), CpoIdentity())
    assert store.get_charge_point("CP1") is None and store.get_location("LOC1") is None


def test_partner_add_prints_a_working_token_a(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    code, out = run("partner", "add", "eMSP X", "--db", db, "--party", "DE/EMS",
                    "--party", "de/ems/nsp")
    assert code == 0
    token_a = out.split("TOKEN_A: ")[1].strip()
    store = Store(create_db_engine(db), CpoIdentity())
    found = store.partner_by_token(token_a)
    assert found is not None and found[1] == "A" and found[0]["name"] == "eMSP X"
    assert store.partner_parties(found[0]["id"]) == [Party("DE", "EMS", "EMSP"),
                                                     Party("DE", "EMS", "NSP")]


def test_partner_parties_are_fixed_by_the_operator(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    code, out = run("partner", "add", "eMSP", "--db", db)
    assert code == 2 and "--party" in out
    for bad, why in (("NL/CFW", "our own"), ("DE", "COUNTRY/PARTY"), ("DE/EMS/BOSS", "role")):
        code, out = run("partner", "add", "eMSP", "--db", db, "--party", bad)
        assert code == 2 and why in out, out
    assert run("partner", "add", "A", "--db", db, "--party", "DE/AAA")[0] == 0
    code, out = run("partner", "add", "B", "--db", db, "--party", "DE/AAA")
    assert code == 2 and "belongs to partner 1" in out
    assert run("partner", "add", "B", "--db", db, "--party", "DE/BBB")[0] == 0
    code, out = run("partner", "party", "2", "--db", db, "--give", "DE/AAA/NSP")
    assert code == 2 and "belongs to partner 1" in out
    code, out = run("partner", "party", "2", "--db", db, "--give", "FR/BBB", "--take", "DE/BBB")
    assert code == 0 and out.strip() == "partner 2: FR/BBB/EMSP"
    code, out = run("partner", "list", "--db", db)
    assert "DE/AAA/EMSP" in out and "FR/BBB/EMSP" in out
    assert run("partner", "route", "04AA", "--db", db, "--party", "DE/AAA")[0] == 0
    assert run("partner", "route", "04", "--db", db, "--party", "FR/BBB")[0] == 0
    store = Store(create_db_engine(db), CpoIdentity())
    assert store.route_for_uid("04AA11") == ("DE", "AAA")  # the longest prefix wins
    assert store.route_for_uid("04BB11") == ("FR", "BBB")
    assert store.route_for_uid("05") is None
    code, out = run("partner", "route", "--db", db)
    assert "04AA" in out and "DE/AAA" in out
    assert run("partner", "route", "04AA", "--db", db, "--remove")[0] == 0
    assert store.route_for_uid("04AA11") == ("FR", "BBB")
    code, out = run("partner", "route", "04AA", "--db", db, "--remove")
    assert code == 2 and "no route" in out


@pytest.mark.timeout(60)
def test_serve_runs_both_servers_and_stops_on_sigint(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    assert run("charger", "add", "CP1", "--db", db, "--no-password", *LOCATION)[0] == 0
    _, out = run("partner", "add", "eMSP", "--db", db, "--party", "DE/EMS")
    token_a = out.split("TOKEN_A: ")[1].strip()
    proc = subprocess.Popen(
        [sys.executable, "-m", "chargerfw", "csms", "serve", "--db", db, "--ocpp-port", "0",
         "--api-port", "0", "--files-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "CHARGERFW_LOG_LEVEL": "WARNING"})
    try:
        assert proc.stdout is not None
        ocpp_line = proc.stdout.readline()
        api_line = proc.stdout.readline()
        assert ocpp_line.startswith("OCPP"), (ocpp_line, proc.stderr.read() if proc.stderr
                                                else "")
        ocpp_url = ocpp_line.split()[1].replace("<charge_point_id>", "CP1")
        api_url = api_line.split()[1].removesuffix("/ocpi/versions")
        proc.stdout.readline()  # the open-data feed
        files_line = proc.stdout.readline()
        assert files_line.startswith("files http://127.0.0.1:")
        assert files_line.endswith(f"(data in {db}.files)\n")
        # The file server answers (nothing without a valid one-time URL).
        assert httpx.get(files_line.split()[1] + "/diagnostics/x").status_code == 405
        with connect(ocpp_url, subprotocols=["ocpp1.6"]) as ws:
            ws.send(json.dumps([2, "1", "Heartbeat", {}]))
            reply = json.loads(ws.recv(timeout=5))
            assert reply[0] == 3 and reply[1] == "1" and "currentTime" in reply[2]
        versions = httpx.get(f"{api_url}/ocpi/versions", headers=ocpi_auth(token_a))
        assert versions.status_code == 200
        assert m.Envelope[list[m.Version]].model_validate(versions.json()).data[0].url \
            == f"{api_url}/ocpi/2.2.1"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_token_add_decides_authorize_without_an_emsp(tmp_path: Path) -> None:
    from chargerfw.csms.authorization import Authorizer
    from chargerfw.csms.store import AsyncStore

    db = str(tmp_path / "c.db")
    code, out = run("token", "add", "04A1B2C3D4E5F6", "--db", db)
    assert code == 0 and out.strip() == "added token 04A1B2C3D4E5F6 (RFID, ALWAYS)"
    code, out = run("token", "add", "0BADCAFE", "--db", db, "--invalid")
    assert code == 0 and "blocked" in out
    code, out = run("token", "add", "X" * 40, "--db", db)
    assert code == 2 and "uid" in out

    store = Store(create_db_engine(db), CpoIdentity())
    token = m.Token.model_validate(store.get_token("NL", "CFW", "04A1B2C3D4E5F6"))
    assert (token.whitelist, token.valid, token.contract_id) == (
        "ALWAYS", True, "NL-CFW-04A1B2C3D4E5F6")

    def no_emsp(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no eMSP should be asked: {request.url}")

    async with httpx.AsyncClient(transport=httpx.MockTransport(no_emsp)) as http:
        authorizer = Authorizer(AsyncStore(store), http)
        accepted = await authorizer.authorize("CP1", "04A1B2C3D4E5F6")
        blocked = await authorizer.authorize("CP1", "0BADCAFE")
    assert (accepted.status, accepted.auth_method) == ("Accepted", "WHITELIST")
    assert blocked.status == "Blocked"


def test_token_add_with_parent_and_expiry(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    code, out = run("token", "add", "04AA", "--db", db, "--parent", "FLEET-1",
                    "--expires", "2027-01-01T01:00:00+01:00")
    assert code == 0 and out.strip() == (
        "added token 04AA (RFID, ALWAYS, parent FLEET-1, expires 2027-01-01 00:00:00)")
    for args, message in (
            (["--expires", "2027-01-01"], "no UTC offset"),
            (["--expires", "soon"], "not an ISO 8601 time"),
            (["--parent", "P" * 21], "parent id tag")):
        code, out = run("token", "add", "04BB", "--db", db, *args)
        assert code == 2 and message in out, out
    store = Store(create_db_engine(db), CpoIdentity())
    assert store.tokens_by_uid("04BB") == []
    [card] = store.tokens_by_uid("04AA")
    assert (card.parent_id_tag, card.expires_at) == (
        "FLEET-1", datetime(2027, 1, 1, tzinfo=UTC))


def test_location_details_and_charger_capabilities(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    code, out = run("charger", "add", "CP1", "--db", db, "--no-password", *LOCATION,
                    "--evse-id-format", "{country_code}*{party_id}*E{charge_point}*{connector}",
                    "--no-rfid-reader", "--format", "CABLE")
    assert code == 0, out
    code, out = run("location", "set", "LOC1", "--db", db, "--hours", "1-5 08:00-20:00",
                    "--hours", "6,7 10:00-16:00", "--closed",
                    "2026-12-25T00:00:00Z/2026-12-26T00:00:00Z", "--operator", "Example",
                    "--operator-website", "https://example.org", "--facility", "cafe",
                    "--facility", "WIFI", "--parking-type", "parking_garage",
                    "--charging-when-closed")
    assert code == 0, out
    code, out = run("location", "show", "LOC1", "--db", db)
    assert code == 0, out
    location = m.Location.model_validate(json.loads(out))
    assert location.opening_times is not None and not location.opening_times.twentyfourseven
    assert [(h.weekday, h.period_begin, h.period_end)
            for h in location.opening_times.regular_hours or []] == [
        *[(day, "08:00", "20:00") for day in range(1, 6)], (6, "10:00", "16:00"),
        (7, "10:00", "16:00")]
    assert location.opening_times.exceptional_closings is not None
    assert location.operator is not None and location.operator.website == "https://example.org"
    assert location.facilities == ["CAFE", "WIFI"] and location.parking_type == "PARKING_GARAGE"
    assert location.charging_when_closed is True
    evse = (location.evses or [])[0]
    assert evse.evse_id == "NL*CFW*ECP1*1" and evse.capabilities == ["REMOTE_START_STOP_CAPABLE"]
    # Only what is given changes; clearing is explicit.
    code, out = run("location", "set", "LOC1", "--db", db, "--open-247", "--clear-facilities")
    assert code == 0, out
    location = m.Location.model_validate(json.loads(run("location", "show", "LOC1", "--db",
                                                        db)[1]))
    assert location.opening_times is not None and location.opening_times.twentyfourseven
    assert location.facilities is None and location.parking_type == "PARKING_GARAGE"
    code, out = run("charger", "set", "CP1", "--db", db, "--rfid-reader")
    assert code == 0, out
    shown = json.loads(run("location", "show", "LOC1", "--db", db)[1])
    assert shown["evses"][0]["capabilities"] == ["REMOTE_START_STOP_CAPABLE", "RFID_READER"]
    for args, message in (
            (["--hours", "1-5 20:00-08:00"], "period_end must be later"),
            (["--hours", "8 10:00-11:00"], "use 1 (Monday) to 7"),
            (["--open-247", "--hours", "1 10:00-11:00"], "exclude each other"),
            (["--facility", "CASINO"], "facilities: unknown CASINO"),
            (["--parking-type", "ROOFTOP"], "parking_type: unknown ROOFTOP"),
            (["--operator-website", "https://x"], "needs --operator")):
        code, out = run("location", "set", "LOC1", "--db", db, *args)
        assert code == 2 and message in out, (args, out)
    assert json.loads(run("location", "show", "LOC1", "--db", db)[1]) == shown
    code, out = run("location", "show", "NOPE", "--db", db)
    assert code == 2 and "unknown location" in out
    code, out = run("charger", "add", "CP2", "--db", db, "--no-password", *LOCATION,
                    "--evse", "CP2-1=not an evse id")
    assert code == 2 and "eMI3" in out


def test_the_default_database_does_not_depend_on_the_current_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHARGERFW_CSMS_DB", raising=False)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    for cwd in (tmp_path / "one", tmp_path / "two"):
        cwd.mkdir()
        monkeypatch.chdir(cwd)
        code, out = run("charger", "add", f"CP-{cwd.name}", "--no-password", *LOCATION)
        assert code == 0, out
        assert list(cwd.iterdir()) == []
    database = tmp_path / "data" / "chargerfw" / "csms.sqlite3"
    code, out = run("charger", "list", "--db", str(database))
    assert code == 0 and "CP-one" in out and "CP-two" in out
    # Under systemd's StateDirectory= the service's state directory wins.
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    code, out = run("charger", "list")
    assert code == 0 and (tmp_path / "state" / "csms.sqlite3").exists()
    assert "CP-one" not in out
