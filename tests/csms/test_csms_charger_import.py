"""Chargers registered in bulk (`csms charger import`) from CSV or TOML: every row checked
before any is stored, the same rules as `charger add`, all or none."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from chargerfw.cli import main
from chargerfw.csms.db import create_db_engine
from chargerfw.csms.store import CpoIdentity, Store

HEADER = ("charge_point_id,password,no_password,location_id,name,address,city,country,"
          "coordinates,time_zone,evses,max_amperage,tariff\n")
NEW_LOCATION = "Depot,Kade 2,Utrecht,NLD,\"52.08917,5.11028\",Europe/Amsterdam"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    return result.exit_code, result.output


def _store(db: str) -> Store:
    return Store(create_db_engine(db), CpoIdentity())


def test_a_csv_file_registers_every_charger_with_its_evses(tmp_path: Path, db: str) -> None:
    rows = [f"CP{n},pw{n},,DEPOT,{NEW_LOCATION},CP{n}-A;CP{n}-B=NL*CFW*E{n}B,16,\n"
            for n in range(1, 4)]
    rows.append("CP4,,true,DEPOT,,,,,,,,,\n")  # the location exists by then
    path = tmp_path / "fleet.csv"
    path.write_text(HEADER + "".join(rows))
    code, out = run("charger", "import", str(path), "--db", db)
    assert code == 0, out
    assert "registered 4 charger(s) with 7 EVSE(s)" in out
    store = _store(db)
    evses = {(e["charge_point_id"], e["ocpp_connector_id"]): e
             for e in store.evses_of_location("DEPOT")}
    assert len(evses) == 7 and evses[("CP2", 2)]["evse_id"] == "NL*CFW*E2B"
    assert store.get_charge_point("CP1")["password_hash"] is not None
    assert store.get_charge_point("CP4")["password_hash"] is None


def test_a_toml_file_registers_its_charger_tables(tmp_path: Path, db: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("""
[[charger]]
charge_point_id = "T1"
password = "secret-1"
location_id = "HQ"
address = "Stationsplein 1"
city = "Utrecht"
country = "NLD"
coordinates = "52.08917,5.11028"
time_zone = "Europe/Amsterdam"
evses = ["T1-L", "T1-R"]
power_type = "AC_1_PHASE"
max_voltage = 230

[[charger]]
charge_point_id = "T2"
no_password = true
location_id = "HQ"
rfid_reader = false
""")
    code, out = run("charger", "import", str(path), "--db", db)
    assert code == 0, out
    store = _store(db)
    assert sorted(e["uid"] for e in store.evses_of_location("HQ")) == ["T1-L", "T1-R", "T2-1"]
    assert store.get_charge_point("T2")["rfid_reader"] is False


def test_one_bad_row_registers_none_and_every_bad_row_is_named(tmp_path: Path,
                                                                db: str) -> None:
    path = tmp_path / "fleet.csv"
    path.write_text(HEADER
                    + f"OK1,pw,,DEPOT,{NEW_LOCATION},,,\n"
                    + "BAD1,pw,,ELSEWHERE,,,,,,,,,\n"          # a new location without address
                    + f"OK1,pw,,DEPOT,{NEW_LOCATION},,,\n"      # twice in the file
                    + f"BAD2,pw,,DEPOT,{NEW_LOCATION},,9999,\n")  # 9999 A
    code, out = run("charger", "import", str(path), "--db", db)
    assert code == 2
    assert "line 3: new location 'ELSEWHERE' needs address" in out
    assert "line 4: charge point 'OK1' is also in line 2" in out
    assert "line 5: max_amperage: 9999 is outside 1..1000" in out
    assert _store(db).list_charge_points() == []


def test_a_charger_that_exists_refuses_the_whole_file(tmp_path: Path, db: str) -> None:
    first = tmp_path / "one.csv"
    first.write_text(HEADER + f"CP1,pw,,DEPOT,{NEW_LOCATION},,,\n")
    assert run("charger", "import", str(first), "--db", db)[0] == 0
    both = tmp_path / "both.csv"
    both.write_text(HEADER + f"CP2,pw,,DEPOT,{NEW_LOCATION},,,\n"
                    + f"CP1,pw,,DEPOT,{NEW_LOCATION},,,\n")
    code, out = run("charger", "import", str(both), "--db", db)
    assert code == 2 and "charge point 'CP1' exists already" in out
    assert [c["id"] for c in _store(db).list_charge_points()] == ["CP1"]


def test_files_that_are_not_registrations_are_refused(tmp_path: Path, db: str) -> None:
    cases = {"a.json": ("{}", "a .csv or .toml file is expected"),
             "b.toml": ("[charger]\nx = 1\n", "chargers are [[charger]] tables"),
             "c.toml": ("[[charger]]\ncharge_point_id = \"X\"\ncolour = \"red\"\n",
                        "unknown field(s): colour"),
             "d.csv": ("", "an empty CSV file"),
             "e.csv": (HEADER, "no chargers in the file")}
    for name, (content, message) in cases.items():
        path = tmp_path / name
        path.write_text(content)
        code, out = run("charger", "import", str(path), "--db", db)
        assert code == 2 and message in out, (name, out)
    assert _store(db).list_charge_points() == []
