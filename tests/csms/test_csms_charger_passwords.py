"""Charge point passwords under two schemes: a key the backend generated (salted SHA-256,
checked at once) and a password someone chose (salted scrypt); `charger add
--generate-password` and a bulk file's ``generate_password`` show the key once and store it
only hashed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from csms_doubles import (
    NEW_LOCATION_OPTIONS,
    add_test_charger,
    basic_auth,
    csms_running,
    run_csms_cli,
    sim_charger,
)
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargerfw.csms.db import create_db_engine
from chargerfw.csms.store import (
    CpoIdentity,
    GeneratedPassword,
    Store,
    generate_password,
    hash_password,
    hashing,
    verify_password,
)
from chargerfw.csms.store.hashing import VerifiedPasswords, is_slow_hash

LOCATION = NEW_LOCATION_OPTIONS
run = run_csms_cli


def _store(db: str) -> Store:
    return Store(create_db_engine(db), CpoIdentity())


# --- the two schemes --------------------------------------------------------------------------

def test_a_generated_key_is_20_random_bytes_in_hex_under_the_fast_scheme() -> None:
    key = generate_password()
    assert isinstance(key, GeneratedPassword) and len(key) == 40
    assert bytes.fromhex(key) and key != generate_password()
    stored = hash_password(key)
    assert stored.startswith("sha256$") and not is_slow_hash(stored) and key not in stored
    assert verify_password(key, stored)
    assert not verify_password(key[:-1] + ("0" if key[-1] != "0" else "1"), stored)
    assert not verify_password("", stored)
    # Salted: the same key stored twice gives two strings, both verifying it.
    again = hash_password(key)
    assert again != stored and verify_password(key, again)


def test_a_chosen_password_keeps_scrypt_even_when_it_looks_generated() -> None:
    looks_random = "0123456789abcdef0123456789abcdef01234567"
    for chosen in ("s3cret", looks_random, str(generate_password())):
        stored = hash_password(chosen)
        assert stored.startswith("scrypt$") and is_slow_hash(stored)
        assert verify_password(chosen, stored) and not verify_password(chosen + "x", stored)


@pytest.mark.parametrize("stored", ["", "sha256$", "sha256$zz$00", "sha256$00", "md5$00$00",
                                    "scrypt$16384$8$1$00", "scrypt$x$8$1$00$00",
                                    "sha256$00$00$00"])
def test_a_malformed_stored_hash_verifies_nothing(stored: str) -> None:
    assert not verify_password("anything", stored)


async def test_a_generated_key_is_checked_without_scrypt_nor_a_thread(
        monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[object] = []

    async def no_thread(*args: object) -> None:
        threads.append(args)
        raise AssertionError("a fast hash needs no thread")

    monkeypatch.setattr(hashing.asyncio, "to_thread", no_thread)
    key = generate_password()
    stored = hash_password(key)
    verified = VerifiedPasswords()
    assert await verified.matches("CP1", key, stored)
    assert not await verified.matches("CP1", "wrong", stored)
    assert threads == []


async def test_chargers_with_either_scheme_connect_and_a_wrong_password_is_refused(
        tmp_path: Path) -> None:
    key = generate_password()
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "GEN1", key)
        await csms.db(add_test_charger, csms.store, "OLD1", "chosen-password")
        assert csms.store.get_charge_point("GEN1")["password_hash"].startswith("sha256$")
        assert csms.store.get_charge_point("OLD1")["password_hash"].startswith("scrypt$")

        async def connects(cp_id: str, password: str) -> bool:
            try:
                async with connect(f"{csms.ocpp_url}/{cp_id}", subprotocols=["ocpp1.6"],
                                   additional_headers=basic_auth(cp_id, password)):
                    return True
            except InvalidStatus as refused:
                assert refused.response.status_code == 401
                return False

        assert await connects("GEN1", key) and await connects("OLD1", "chosen-password")
        assert not await connects("GEN1", "chosen-password")
        assert not await connects("OLD1", key)


# --- the commands -----------------------------------------------------------------------------

def test_charger_add_generate_password_prints_the_key_once_and_stores_its_hash(
        db: str) -> None:
    code, out = run("charger", "add", "CP1", "--db", db, "--generate-password", *LOCATION)
    assert code == 0, out
    key = out.strip().splitlines()[-1].rsplit(": ", 1)[1]
    assert len(key) == 40 and out.count(key) == 1
    stored = _store(db).get_charge_point("CP1")["password_hash"]
    assert stored.startswith("sha256$") and key not in stored
    assert verify_password(key, stored)
    # A chosen one is still scrypt.
    code, out = run("charger", "add", "CP2", "--db", db, "--password", "chosen-1", *LOCATION)
    assert code == 0, out
    assert _store(db).get_charge_point("CP2")["password_hash"].startswith("scrypt$")


@pytest.mark.parametrize("other", [["--password", "chosen-1"], ["--no-password"]])
def test_generate_password_with_another_password_option_is_a_usage_error(
        tmp_path: Path, other: list[str]) -> None:
    db = str(tmp_path / "c.db")
    code, out = run("charger", "add", "CP1", "--db", db, "--generate-password", *other,
                    *LOCATION)
    assert code == 2
    assert "--generate-password" in out and other[0] in out and "exclude each other" in out
    assert _store(db).get_charge_point("CP1") is None


async def test_attaching_an_auto_registered_charger_can_generate_its_password(
        tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    async with csms_running(db, auto_register=True) as csms:
        async with sim_charger(csms, "NEW1", "its-own-choice"):
            pass
        assert csms.store.get_charge_point("NEW1")["password_hash"].startswith("scrypt$")
    code, out = await asyncio.to_thread(run, "charger", "add", "NEW1", "--db", db,
                                        "--generate-password", *LOCATION)
    assert code == 0 and out.startswith("attached NEW1"), out
    key = out.strip().splitlines()[-1].rsplit(": ", 1)[1]
    assert verify_password(key, _store(db).get_charge_point("NEW1")["password_hash"])


def test_a_bulk_file_generates_keys_where_asked_and_prints_them_as_csv(
        tmp_path: Path, db: str) -> None:
    path = tmp_path / "fleet.toml"
    path.write_text("""
[[charger]]
charge_point_id = "G1"
generate_password = true
location_id = "HQ"
address = "Stationsplein 1"
city = "Utrecht"
country = "NLD"
coordinates = "52.08917,5.11028"
time_zone = "Europe/Amsterdam"

[[charger]]
charge_point_id = "G2"
generate_password = true
location_id = "HQ"

[[charger]]
charge_point_id = "C1"
password = "chosen-1"
location_id = "HQ"
""")
    code, out = run("charger", "import", str(path), "--db", db)
    assert code == 0, out
    lines = out.splitlines()
    csv_rows = lines[lines.index("charge_point_id,password") + 1:]
    keys = dict(row.split(",") for row in csv_rows)
    assert sorted(keys) == ["G1", "G2"] and keys["G1"] != keys["G2"]
    store = _store(db)
    for cp_id, key in keys.items():
        stored = store.get_charge_point(cp_id)["password_hash"]
        assert stored.startswith("sha256$") and verify_password(key, stored)
    assert store.get_charge_point("C1")["password_hash"].startswith("scrypt$")


def test_a_bulk_row_with_a_password_and_generate_password_registers_none(
        tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    path = tmp_path / "fleet.csv"
    path.write_text("charge_point_id,password,generate_password,location_id,address,city,"
                    "country,coordinates,time_zone\n"
                    "G1,,true,HQ,Kade 2,Utrecht,NLD,\"52.08917,5.11028\",Europe/Amsterdam\n"
                    "B1,chosen-1,true,HQ,,,,,\n")
    code, out = run("charger", "import", str(path), "--db", db)
    assert code == 2
    assert "line 3" in out and "password and generate_password exclude each other" in out
    assert "charge_point_id,password" not in out  # no key was shown
    assert _store(db).get_charge_point("G1") is None
