"""`chargerfw csms tariff`: every OCPI 2.2.1 tariff from a TOML or JSON file; update and
delete; a bad file is refused with the field named and nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from chargerfw.cli import main
from chargerfw.csms.db import create_db_engine
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import CpoIdentity, PageQuery, Store

COMPLEX_TOML = """
currency = "eur"
type = "REGULAR"
min_price = { excl_vat = 0.50, incl_vat = 0.55 }
max_price = { excl_vat = 50.0, incl_vat = 60.0 }

[[elements]]
price_components = [{ type = "FLAT", price = 2.50, vat = 15.0, step_size = 1 }]

[[elements]]
price_components = [{ type = "TIME", price = 1.00, vat = 20.0, step_size = 900 }]
restrictions = { max_current = 32.0 }

[[elements]]
price_components = [{ type = "TIME", price = 2.00, vat = 20.0, step_size = 600 }]
restrictions = { min_current = 32.0, day_of_week = ["MONDAY", "TUESDAY", "WEDNESDAY",
                 "THURSDAY", "FRIDAY"] }

[[elements]]
price_components = [{ type = "PARKING_TIME", price = 5.00, vat = 10.0, step_size = 300 }]
# TOML times (with seconds) are taken as OCPI's HH:MM; quoted "09:00" works as well.
restrictions = { start_time = 09:00:00, end_time = "18:00", start_date = 2026-01-01 }

[[elements]]
price_components = [{ type = "ENERGY", price = 0.0, step_size = 1 }]
restrictions = { max_kwh = 1.0, min_power = 0.0, max_power = 50.0, max_duration = 3600 }

[[elements]]
price_components = [{ type = "TIME", price = 5.00, vat = 20.0, step_size = 60 }]
restrictions = { reservation = "RESERVATION" }
"""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", *args])
    return result.exit_code, result.output


def stored(db: str) -> list[m.Tariff]:
    store = Store(create_db_engine(db), CpoIdentity())
    return [m.Tariff.model_validate(t) for t in store.list_tariffs(PageQuery()).items]


def test_add_from_toml_update_from_json_and_delete(db: str, tmp_path: Path) -> None:
    path = tmp_path / "complex.toml"
    path.write_text(COMPLEX_TOML)
    code, out = run("tariff", "add", "COMPLEX", "--db", db, "--file", str(path))
    assert code == 0, out
    [t] = stored(db)
    assert (t.id, t.country_code, t.party_id, t.currency, t.type) == (
        "COMPLEX", "NL", "CFW", "EUR", "REGULAR")
    assert len(t.elements) == 6 and t.min_price is not None
    restrictions = t.elements[3].restrictions
    assert restrictions is not None and restrictions.model_dump()["start_time"] == "09:00"
    assert restrictions.model_dump()["start_date"] == "2026-01-01"

    update = tmp_path / "complex.json"
    update.write_text(json.dumps({"id": "COMPLEX", "currency": "EUR", "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.35, "vat": 21, "step_size": 1}],
         "restrictions": {"start_time": "22:00", "end_time": "06:00"}},
        {"price_components": [{"type": "ENERGY", "price": 0.45, "vat": 21,
                               "step_size": 1}]}]}))
    code, out = run("tariff", "update", "COMPLEX", "--db", db, "--file", str(update))
    assert code == 0, out
    [t] = stored(db)
    assert [float(e.price_components[0].price) for e in t.elements] == [0.35, 0.45]

    code, out = run("tariff", "list", "--db", db)
    assert code == 0 and "COMPLEX" in out and "ENERGY" in out
    code, out = run("tariff", "delete", "COMPLEX", "--db", db)
    assert code == 0, out
    assert stored(db) == []
    code, out = run("tariff", "delete", "COMPLEX", "--db", db)
    assert code == 2 and "unknown tariff" in out


def test_options_make_a_one_element_tariff_with_parking(db: str) -> None:
    code, out = run("tariff", "add", "T1", "--db", db, "--energy", "0.30", "--parking", "2",
                    "--vat", "21")
    assert code == 0, out
    [t] = stored(db)
    assert [(c.type, float(c.price), c.vat) for c in t.elements[0].price_components] == [
        ("ENERGY", 0.30, 21), ("PARKING_TIME", 2, 21)]
    code, out = run("tariff", "update", "T2", "--db", db, "--energy", "0.40")
    assert code == 2 and "unknown tariff 'T2'" in out


def test_bad_files_are_refused_naming_the_field(db: str, tmp_path: Path) -> None:
    cases = {
        "late.toml": ('currency = "EUR"\n[[elements]]\nprice_components = [{ type = "TIME", '
                      'price = 1.0, step_size = 1 }]\nrestrictions = { start_time = "24:30" }\n',
                      "start_time"),
        "day.json": (json.dumps({"elements": [{"price_components": [
            {"type": "TIME", "price": 1.0, "step_size": 1}],
            "restrictions": {"day_of_week": ["MON"]}}]}), "day_of_week"),
        "kind.json": (json.dumps({"elements": [{"price_components": [
            {"type": "KWH", "price": 1.0, "step_size": 1}]}]}), "type"),
        "other.json": (json.dumps({"id": "OTHER", "elements": []}), "OTHER"),
        "broken.toml": ("elements = [", "not valid TOML"),
        "tariff.yaml": ("elements: []", ".toml or .json"),
    }
    for name, (text, message) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        code, out = run("tariff", "add", "T1", "--db", db, "--file", str(path))
        assert code == 2 and message in out, (name, out)
    code, out = run("tariff", "add", "T1", "--db", db, "--file", str(tmp_path / "none.toml"))
    assert code == 2 and "cannot read" in out
    code, out = run("tariff", "add", "T1", "--db", db, "--file", str(tmp_path / "day.json"),
                    "--energy", "0.3")
    assert code == 2 and "not both" in out
    assert stored(db) == []
