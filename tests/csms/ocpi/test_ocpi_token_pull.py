"""Pulling an eMSP's token list: at registration, by command, on the schedule; pages,
date_from, the ownership rule, and failures that change nothing they should not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest
from csms_doubles import (
    EmspDouble,
    csms_running,
    ocpi_auth,
    register_emsp,
    running_emsp,
    token_body,
)

from chargerfw.csms.ocpi.pull import PullError
from chargerfw.csms.ocpi.token_pull import pull_tokens
from chargerfw.csms.store import Party, Store
from chargerfw.csms.urlpolicy import LOOPBACK_NETWORKS, UrlPolicy, guarded_client

pytestmark = pytest.mark.timeout(60)
V = "/ocpi/2.2.1"


def token_list() -> list[dict[str, Any]]:
    """Five tokens of DE*EMS, one of another party, one that is no OCPI Token."""
    tokens = [token_body(f"T{n}", last_updated=f"2026-01-0{n}T00:00:00Z") for n in range(1, 6)]
    tokens.append(token_body("FOREIGN", country_code="FR", party_id="XYZ"))
    broken = token_body("BROKEN")
    del broken["contract_id"]
    tokens.append(broken)
    return tokens


def add_emsp_partner(store: Store, emsp: EmspDouble) -> int:
    """A registered eMSP whose tokens Sender is the double's."""
    party = [Party("DE", "EMS")]
    partner_id, _ = store.add_partner("eMSP", party)
    store.register_partner(partner_id, emsp.token_b, f"{emsp.base}/emsp/versions", "2.2.1",
                           [{"identifier": "tokens", "role": "SENDER",
                             "url": f"{emsp.base}/emsp/tokens"}], party)
    return partner_id


def token_gets(emsp: EmspDouble) -> list[dict[str, Any]]:
    return [r.body for r in emsp.received if r.method == "GET" and r.path == "/emsp/tokens"]


async def wait_for_token(store: Store, uid: str) -> dict[str, Any]:
    for _ in range(200):
        token = store.get_token("DE", "EMS", uid)
        if token is not None:
            return token
        await asyncio.sleep(0.02)
    raise AssertionError(f"token {uid} never arrived")


async def test_registration_pulls_then_pulls_only_changes(db: str) -> None:
    emsp = EmspDouble(token_list=token_list())
    async with running_emsp(emsp), csms_running(db) as csms:
        store = csms.store
        token_c = await register_emsp(csms, emsp)
        await wait_for_token(store, "T5")
        for _ in range(100):  # the pull is recorded after its last page
            if (record := store.last_token_pull(1)) is not None:
                break
            await asyncio.sleep(0.02)
        assert record is not None and record["last_error"] is None
        assert all(store.get_token("DE", "EMS", f"T{n}") for n in range(1, 6))
        assert store.get_token("FR", "XYZ", "FOREIGN") is None  # not the eMSP's party
        assert store.get_token("DE", "EMS", "BROKEN") is None
        gets = token_gets(emsp)
        assert [g.get("offset") for g in gets] == [None, "2", "4", "6"]
        assert "date_from" not in gets[0]
        # The eMSP changes one token and a push overtakes the pull for another.
        emsp.token_list[0] = token_body("T1", valid=False, last_updated="2027-01-01T00:00:00Z")
        emsp.token_list[1] = token_body("T2", last_updated="2027-01-01T00:00:00Z")
        async with guarded_client(UrlPolicy.allowing(LOOPBACK_NETWORKS), 5) as http:
            async with httpx.AsyncClient(base_url=csms.api_url) as client:
                pushed = await client.put(f"{V}/tokens/DE/EMS/T2", headers=ocpi_auth(token_c),
                                          json=token_body("T2", whitelist="NEVER",
                                                          last_updated="2027-06-01T00:00:00Z"))
                assert pushed.status_code == 200, pushed.text
            emsp.received.clear()
            result = await pull_tokens(csms.db, http, 1)
        since = record["last_success_from"].strftime("%Y-%m-%dT%H:%M:%SZ")
        assert token_gets(emsp)[0]["date_from"] == since
        assert (result.stored, result.unchanged) == (1, 1)
        assert store.get_token("DE", "EMS", "T1")["valid"] is False
        assert store.get_token("DE", "EMS", "T2")["whitelist"] == "NEVER"  # the newer push


async def test_failed_pulls_keep_the_last_good_starting_point(db: str) -> None:
    emsp = EmspDouble(token_list=token_list())
    policy = UrlPolicy.allowing(LOOPBACK_NETWORKS)
    async with running_emsp(emsp), csms_running(db, token_pull_interval_s=0) as csms:
        store = csms.store
        partner_id = await csms.db(add_emsp_partner, store, emsp)
        async with guarded_client(policy, 5) as http:
            await pull_tokens(csms.db, http, partner_id)
            good = store.last_token_pull(partner_id)["last_success_from"]
            emsp.fail_token_offsets = {2}
            with pytest.raises(PullError, match="HTTP 500"):
                await pull_tokens(csms.db, http, partner_id, full=True)
            record = store.last_token_pull(partner_id)
            assert record["last_success_from"] == good and "500" in record["last_error"]
            # A next-page link to another host would carry our token there: not followed.
            emsp.fail_token_offsets = set()
            emsp.next_link_base = "http://127.0.0.2:9"
            emsp.received.clear()
            with pytest.raises(PullError, match="leaves its own host"):
                await pull_tokens(csms.db, http, partner_id, full=True)
            assert len(token_gets(emsp)) == 1
            assert store.last_token_pull(partner_id)["last_success_from"] == good
        # A partner whose tokens endpoint leads into a network the policy refuses.
        async with guarded_client(UrlPolicy(), 5) as strict:
            with pytest.raises(PullError, match="unreachable"):
                await pull_tokens(csms.db, strict, partner_id)


async def test_scheduled_pull(db: str) -> None:
    emsp = EmspDouble(token_list=token_list())
    async with running_emsp(emsp), csms_running(db, token_pull_interval_s=0.2) as csms:
        await csms.db(add_emsp_partner, csms.store, emsp)
        await wait_for_token(csms.store, "T5")


async def test_cli_pull_tokens(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chargerfw.cli import main
    from chargerfw.csms.db import create_db_engine, upgrade_database
    from chargerfw.csms.store import CpoIdentity

    db = str(tmp_path / "c.db")
    engine = create_db_engine(db)
    upgrade_database(engine)
    store = Store(engine, CpoIdentity())
    emsp = EmspDouble(token_list=token_list())
    async with running_emsp(emsp):
        partner_id = add_emsp_partner(store, emsp)
        args = ["csms", "partner", "pull-tokens", str(partner_id), "--db", db]
        refused = await asyncio.to_thread(CliRunner().invoke, main, args)
        assert refused.exit_code == 2 and "unreachable" in refused.output
        assert store.get_token("DE", "EMS", "T1") is None
        pulled = await asyncio.to_thread(CliRunner().invoke, main, [
            *args, "--allow-outbound-network", "127.0.0.0/8"])
        assert pulled.exit_code == 0, pulled.output
        assert "5 stored" in pulled.output and "1 of other parties refused" in pulled.output
        assert "1 invalid" in pulled.output
        missing = await asyncio.to_thread(CliRunner().invoke, main, [
            "csms", "partner", "pull-tokens", "99", "--db", db])
        assert missing.exit_code == 2 and "no registered partner 99" in missing.output
    engine.dispose()
