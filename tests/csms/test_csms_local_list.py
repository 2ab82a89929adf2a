"""The local authorization list the backend builds from its token database and pushes with
SendLocalList: the list's rules, Differential updates, chunks, the version per charger, and
every way a charger can answer (an ``ocpp`` library charge point on loopback)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from csms_doubles import add_test_charger, csms_running, sim_charger

from chargerfw.cli import main
from chargerfw.csms.local_list import (
    LocalListPusher,
    apply_update,
    chunked,
    differential_update,
    wanted_list,
)
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import NotFound, Store

pytestmark = pytest.mark.timeout(60)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LIMITS = {"SendLocalListMaxLength": "2", "LocalAuthListMaxLength": "5"}


def _emsp_token(uid: str, whitelist: str, valid: bool = True, party_id: str = "EMS",
                **extra: Any) -> m.Token:
    return m.Token.model_validate({
        "country_code": "DE", "party_id": party_id, "uid": uid, "type": "RFID",
        "contract_id": f"DE-{party_id}-{uid}", "issuer": "Test eMSP", "valid": valid,
        "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z", **extra})


def test_the_list_holds_what_may_be_accepted_offline(store: Store) -> None:
    store.add_local_token("CARD1", parent_id_tag="FLEET", expires_at=NOW + timedelta(days=1))
    store.add_local_token("OLD", expires_at=NOW - timedelta(days=1))
    store.add_local_token("NEVERCARD", whitelist="NEVER")
    for token in (_emsp_token("E-ALWAYS", "ALWAYS", group_id="G1"),
                  _emsp_token("E-ALLOWED", "ALLOWED"),
                  _emsp_token("E-OFFLINE", "ALLOWED_OFFLINE"),
                  _emsp_token("E-NEVER", "NEVER"),
                  _emsp_token("E-BLOCKED", "ALWAYS", valid=False),
                  _emsp_token("E" * 21, "ALWAYS"),  # longer than an OCPP idTag
                  # The site's own card decides its uid, whatever an eMSP says of it.
                  _emsp_token("CARD1", "ALWAYS", valid=False, party_id="OTH")):
        store.put_token(token, None)
    assert wanted_list(store, NOW) == {
        "CARD1": {"status": "Accepted", "expiry_date": "2026-06-02T12:00:00Z",
                  "parent_id_tag": "FLEET"},
        "OLD": {"status": "Expired", "expiry_date": "2026-05-31T12:00:00Z"},
        "E-ALWAYS": {"status": "Accepted", "parent_id_tag": "G1"},
        "E-ALLOWED": {"status": "Accepted"},
        "E-OFFLINE": {"status": "Accepted"},
        "E-BLOCKED": {"status": "Blocked"},
    }


A = {"status": "Accepted"}
B = {"status": "Blocked"}


@pytest.mark.parametrize(("held", "wanted", "update"), [
    ({}, {}, []),
    ({"X": A}, {"X": A}, []),
    ({}, {"X": A}, [{"id_tag": "X", "id_tag_info": A}]),
    ({"X": A}, {}, [{"id_tag": "X"}]),
    ({"X": A, "Y": A}, {"X": B, "Z": A},
     [{"id_tag": "Y"}, {"id_tag": "X", "id_tag_info": B}, {"id_tag": "Z", "id_tag_info": A}]),
    ({"X": {"status": "Accepted", "parent_id_tag": "P"}}, {"X": A},
     [{"id_tag": "X", "id_tag_info": A}]),
])
def test_differential_update(held: dict[str, Any], wanted: dict[str, Any],
                             update: list[dict[str, Any]]) -> None:
    assert differential_update(held, wanted) == update
    assert apply_update(held, update) == wanted


@pytest.mark.parametrize(("count", "size", "sizes"), [
    (0, 3, [0]), (1, 3, [1]), (3, 3, [3]), (4, 3, [3, 1]), (7, 2, [2, 2, 2, 1])])
def test_chunked(count: int, size: int, sizes: list[int]) -> None:
    entries = [{"id_tag": str(i)} for i in range(count)]
    chunks = chunked(entries, size)
    assert [len(c) for c in chunks] == sizes
    assert [e for c in chunks for e in c] == entries


def _sent(charger: Any) -> list[tuple[str, int, list[dict[str, Any]]]]:
    return [(p["update_type"], p["list_version"], p.get("local_authorization_list") or [])
            for action, p in charger.received if action == "SendLocalList"]


async def test_push_full_then_differential_in_chunks(db: str) -> None:
    async with csms_running(db) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        for uid in ("C1", "C2", "C3"):
            await csms.db(store.add_local_token, uid)
        pusher = LocalListPusher(csms.db, csms.ocpp)
        async with sim_charger(csms, "CP1") as charger:
            charger.config_keys = dict(LIMITS)
            first = await pusher.push("CP1")
            assert (first.status, first.update_type, first.version, first.messages,
                    first.entries_sent) == ("Accepted", "Full", 2, 2, 3)
            assert "no list recorded" in first.detail
            assert _sent(charger) == [
                ("Full", 1, [{"id_tag": "C1", "id_tag_info": A},
                             {"id_tag": "C2", "id_tag_info": A}]),
                ("Differential", 2, [{"id_tag": "C3", "id_tag_info": A}])]
            held = await csms.db(store.held_local_list, "CP1")
            assert (held.version, held.entries) == (2, {"C1": A, "C2": A, "C3": A})

            charger.local_list_version = 2
            charger.received.clear()
            same = await pusher.push("CP1")
            assert (same.status, same.version, same.messages) == ("UpToDate", 2, 0)
            assert _sent(charger) == []

            await csms.db(store.add_local_token, "C2", valid=False)
            await csms.db(store.add_local_token, "C4")
            changed = await pusher.push("CP1")
            assert (changed.status, changed.update_type, changed.version) == (
                "Accepted", "Differential", 3)
            assert _sent(charger) == [("Differential", 3, [
                {"id_tag": "C2", "id_tag_info": B}, {"id_tag": "C4", "id_tag_info": A}])]

            # The charger lost its list (or another backend sent one): Full again.
            charger.local_list_version = 0
            charger.received.clear()
            again = await pusher.push("CP1")
            assert (again.status, again.update_type, again.version) == ("Accepted", "Full", 5)
            assert "the charger holds version 0, the backend recorded 3" in again.detail
            assert [(kind, version) for kind, version, _ in _sent(charger)] == [
                ("Full", 4), ("Differential", 5)]


async def test_version_mismatch_falls_back_to_full(db: str) -> None:
    async with csms_running(db) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        await csms.db(store.add_local_token, "C1")
        await csms.db(store.record_local_list, "CP1", 7, {"C0": A})
        pusher = LocalListPusher(csms.db, csms.ocpp)
        async with sim_charger(csms, "CP1") as charger:
            charger.config_keys = dict(LIMITS)
            charger.local_list_version = 7
            charger.answers["SendLocalList"] = (
                lambda p: "VersionMismatch" if p["update_type"] == "Differential"
                else "Accepted")
            outcome = await pusher.push("CP1")
            assert (outcome.status, outcome.update_type, outcome.version) == (
                "Accepted", "Differential", 8)
            assert "VersionMismatch" in outcome.detail
            assert _sent(charger) == [
                ("Differential", 8, [{"id_tag": "C0"}, {"id_tag": "C1", "id_tag_info": A}]),
                ("Full", 8, [{"id_tag": "C1", "id_tag_info": A}])]
        held = await csms.db(store.held_local_list, "CP1")
        assert (held.version, held.entries) == (8, {"C1": A})


@pytest.mark.parametrize("answer", ["Failed", "NotSupported"])
async def test_a_refused_push_is_reported_and_keeps_the_record_true(tmp_path: Any,
                                                                    answer: str) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        for uid in ("C1", "C2", "C3"):
            await csms.db(store.add_local_token, uid)
        pusher = LocalListPusher(csms.db, csms.ocpp)
        async with sim_charger(csms, "CP1") as charger:
            charger.config_keys = dict(LIMITS)
            # The second message is refused: the first one's version is what it holds.
            charger.answers["SendLocalList"] = (
                lambda p: answer if p["list_version"] == 2 else "Accepted")
            outcome = await pusher.push("CP1", full=True)
            assert (outcome.status, outcome.ok, outcome.version, outcome.messages) == (
                answer, False, 1, 1)
            assert "after 1 accepted message(s)" in outcome.detail
            assert "holds version 1" in outcome.detail
        held = await csms.db(store.held_local_list, "CP1")
        assert (held.version, held.entries) == (1, {"C1": A, "C2": A})


async def test_what_is_not_sent(tmp_path: Any) -> None:
    async with csms_running(str(tmp_path / "c.db")) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        for uid in ("C1", "C2", "C3"):
            await csms.db(store.add_local_token, uid)
        pusher = LocalListPusher(csms.db, csms.ocpp)
        assert (await pusher.push("CP1")).status == "NotConnected"
        async with sim_charger(csms, "CP1") as charger:
            unknown = await pusher.push("CP1")
            assert unknown.status == "LimitsUnknown"
            assert "SendLocalListMaxLength" in unknown.detail
            charger.config_keys = {"SendLocalListMaxLength": "lots",
                                   "LocalAuthListMaxLength": "5"}
            assert "'lots'" in (await pusher.push("CP1")).detail
            charger.config_keys = {"SendLocalListMaxLength": "2", "LocalAuthListMaxLength": "2"}
            too_long = await pusher.push("CP1")
            assert (too_long.status, too_long.messages) == ("TooLong", 0)
            assert "3 entries" in too_long.detail and "at most 2" in too_long.detail
            assert _sent(charger) == []
        assert await csms.db(store.held_local_list, "CP1") is None
        with pytest.raises(NotFound):
            store.request_operator_command("NOPE", "local_list_push", {"full": False})


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["csms", "local-list", *args])
    return result.exit_code, result.output


async def test_cli_push_goes_through_the_running_backend(db: str) -> None:
    async with csms_running(db, operator_command_poll_s=0.1) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        await csms.db(store.add_local_token, "C1", parent_id_tag="FLEET")
        await csms.db(store.add_local_token, "C2")
        async with sim_charger(csms, "CP1") as charger:
            charger.config_keys = dict(LIMITS)
            code, out = await asyncio.to_thread(_cli, "show", "CP1", "--db", db)
            assert code == 0, out
            assert out.splitlines()[0] == (
                "CP1 holds no list from this backend; a push sends 2 entries (Full)")
            code, out = await asyncio.to_thread(_cli, "push", "CP1", "--db", db)
            assert code == 0, out
            assert out.strip() == (
                "CP1: Accepted: the charger holds version 1: 2 entries (Full: no list "
                "recorded for the charger) [Full, 1 message(s) accepted, 2 entries]")
            await csms.db(store.add_local_token, "C2", valid=False)
            code, out = await asyncio.to_thread(_cli, "show", "CP1", "--db", db)
            lines = out.splitlines()
            assert lines[0].startswith("CP1 holds version 1 (2 entries, ")
            assert lines[0].endswith("UTC); a push changes 1")
            assert lines[3].split() == ["C1", "Accepted", "FLEET"]
            assert lines[4].split() == ["C2", "Blocked", "change"]
            assert lines[5].startswith("last push (") and "CP1: Accepted" in lines[5]
            charger.answers["SendLocalList"] = "NotSupported"
            charger.local_list_version = 1
            code, out = await asyncio.to_thread(_cli, "push", "CP1", "--db", db)
            assert code == 1
            assert out.strip().startswith("CP1: NotSupported: the charger does not support")
            code, out = await asyncio.to_thread(_cli, "show", "CP1", "--db", db, "--json")
            shown = json.loads(out)
            assert shown["version"] == 1 and shown["last_push"]["status"] == "NotSupported"
            assert shown["changes"] == [{"id_tag": "C2", "id_tag_info": B}]
        code, out = await asyncio.to_thread(_cli, "push", "NOPE", "--db", db)
        assert code == 2 and "unknown charge point 'NOPE'" in out


def test_cli_push_without_a_running_backend(tmp_path: Any) -> None:
    db = str(tmp_path / "c.db")
    from chargerfw.csms.db import create_db_engine, upgrade_database
    from chargerfw.csms.store import CpoIdentity

    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    add_test_charger(store, "CP1", None)
    code, out = _cli("push", "CP1", "--db", db, "--wait", "1")
    assert code == 1 and "no running backend took the request within 1 s" in out
    assert store.claim_operator_commands() == []  # withdrawn: a later server won't push
