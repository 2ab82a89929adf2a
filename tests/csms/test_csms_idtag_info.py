"""The idTagInfo the central system answers Authorize, StartTransaction and StopTransaction
with, exactly as it goes over the wire to an ``ocpp`` library charge point: the status, the
expiry of a site card and the parentIdTag of a token's group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from csms_doubles import (
    EmspDouble,
    add_test_charger,
    csms_running,
    iso,
    register_emsp,
    running_emsp,
    sim_charger,
)
from ocpp.v16 import call

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import StoreError

pytestmark = pytest.mark.timeout(60)
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
NEXT_YEAR = datetime.now(UTC).replace(microsecond=0) + timedelta(days=365)
YESTERDAY = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)


def _z(stamp: datetime) -> str:
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _emsp_token(uid: str, whitelist: str = "ALWAYS", **extra: Any) -> m.Token:
    return m.Token.model_validate({
        "country_code": "DE", "party_id": "EMS", "uid": uid, "type": "RFID",
        "contract_id": f"DE-EMS-{uid}", "issuer": "Test eMSP", "valid": True,
        "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z", **extra})


def _start(id_tag: str, meter_start: int = 0) -> call.StartTransaction:
    return call.StartTransaction(connector_id=1, id_tag=id_tag, meter_start=meter_start,
                                 timestamp=iso(T0))


def _stop(transaction_id: int, id_tag: str | None) -> call.StopTransaction:
    return call.StopTransaction(meter_stop=500, timestamp=iso(T0 + timedelta(hours=1)),
                                transaction_id=transaction_id, reason="Local", id_tag=id_tag)


async def test_authorize_and_start_carry_expiry_and_parent(db: str) -> None:
    async with csms_running(db) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        await csms.db(store.add_local_token, "CARD1", parent_id_tag="FLEET-7",
                      expires_at=NEXT_YEAR)
        await csms.db(store.add_local_token, "OLDCARD", parent_id_tag="FLEET-7",
                      expires_at=YESTERDAY)
        await csms.db(store.add_local_token, "PLAIN")
        await csms.db(store.put_token, _emsp_token("EMSP1", group_id="DE-EMS-GROUP1"), None)
        await csms.db(store.put_token, _emsp_token("EMSP2", group_id="G" * 36), None)
        await csms.db(store.put_token, _emsp_token("BLOCKED1", valid=False, group_id="GRP"),
                      None)
        async with sim_charger(csms, "CP1") as charger:
            async def authorize(id_tag: str) -> Any:
                return await charger.wire_answer(call.Authorize(id_tag=id_tag))

            card = {"status": "Accepted", "expiryDate": _z(NEXT_YEAR), "parentIdTag": "FLEET-7"}
            assert await authorize("CARD1") == {"idTagInfo": card}
            assert await authorize("OLDCARD") == {"idTagInfo": {
                "status": "Expired", "expiryDate": _z(YESTERDAY), "parentIdTag": "FLEET-7"}}
            assert await authorize("PLAIN") == {"idTagInfo": {"status": "Accepted"}}
            assert await authorize("EMSP1") == {"idTagInfo": {
                "status": "Accepted", "parentIdTag": "DE-EMS-GROUP1"}}
            # A group_id longer than an OCPP IdToken cannot be a parentIdTag.
            assert await authorize("EMSP2") == {"idTagInfo": {"status": "Accepted"}}
            assert await authorize("BLOCKED1") == {"idTagInfo": {
                "status": "Blocked", "parentIdTag": "GRP"}}
            assert await authorize("NOBODY") == {"idTagInfo": {"status": "Invalid"}}

            started = await charger.wire_answer(_start("CARD1"))
            assert started == {"transactionId": started["transactionId"], "idTagInfo": card}
            # The outbox delivers the same start again: the same transaction, the same answer.
            assert await charger.wire_answer(_start("CARD1")) == started
            refused = await charger.wire_answer(_start("OLDCARD", 10))
            assert refused["idTagInfo"] == {
                "status": "Expired", "expiryDate": _z(YESTERDAY), "parentIdTag": "FLEET-7"}
        tx = await csms.db(store.get_transaction, refused["transactionId"])
        assert (tx["id_tag_status"], tx["status"]) == ("Expired", "INVALID")


async def test_stop_tells_the_tokens_real_status(db: str) -> None:
    async with running_emsp(EmspDouble()) as emsp, csms_running(db) as csms:
        store = csms.store
        await csms.db(add_test_charger, store, "CP1", None)
        await register_emsp(csms, emsp)
        await csms.db(store.set_token_route, "RT", "DE", "EMS")
        emsp.authorize_answers["RT-1"] = {
            "allowed": "ALLOWED", "token": _emsp_token("RT-1", "NEVER", group_id="RTG")
            .model_dump(mode="json")}
        await csms.db(store.put_token, _emsp_token("EMSP1", group_id="GRP1"), None)
        await csms.db(store.add_local_token, "CARD1", parent_id_tag="FLEET-7")
        async with sim_charger(csms, "CP1") as charger:
            first = await charger.wire_answer(_start("EMSP1"))
            second = await charger.wire_answer(_start("CARD1", 1))
            third = await charger.wire_answer(_start("RT-1", 2))
            fourth = await charger.wire_answer(_start("CARD1", 3))
            assert third["idTagInfo"] == {"status": "Accepted", "parentIdTag": "RTG"}

            # The eMSP blocks its token while the session runs.
            await csms.db(store.patch_token, "DE", "EMS", "EMSP1", "RFID",
                          m.TokenPatch.model_validate({"valid": False,
                                                       "last_updated": "2026-02-01T00:00:00Z"}))
            assert await charger.wire_answer(_stop(first["transactionId"], "EMSP1")) == {
                "idTagInfo": {"status": "Blocked", "parentIdTag": "GRP1"}}
            # The operator lets the site card expire; a stranger's card is Invalid.
            await csms.db(store.add_local_token, "CARD1", parent_id_tag="FLEET-7",
                          expires_at=YESTERDAY)
            assert await charger.wire_answer(_stop(second["transactionId"], "CARD1")) == {
                "idTagInfo": {"status": "Expired", "expiryDate": _z(YESTERDAY),
                              "parentIdTag": "FLEET-7"}}
            assert await charger.wire_answer(_stop(fourth["transactionId"], "NOBODY")) == {
                "idTagInfo": {"status": "Invalid"}}
            # A token only its eMSP knows: what it said a moment ago, without asking again;
            # once that is forgotten, the status its transaction started with.
            def authorize_asks() -> int:
                return sum(r.path.endswith("/authorize") for r in emsp.received)

            asked = authorize_asks()
            assert await charger.wire_answer(_stop(third["transactionId"], "RT-1")) == {
                "idTagInfo": {"status": "Accepted", "parentIdTag": "RTG"}}
            csms.ocpp.authorizer.forget("RT-1")
            assert await charger.wire_answer(_stop(third["transactionId"], "RT-1")) == {
                "idTagInfo": {"status": "Accepted"}}
            assert authorize_asks() == asked == 1
            # Without an idTag, no idTagInfo.
            assert await charger.wire_answer(_stop(fourth["transactionId"], None)) == {}


def test_bad_card_details_are_refused_and_store_nothing(store: Any) -> None:
    with pytest.raises(StoreError, match="parent id tag"):
        store.add_local_token("CARD1", parent_id_tag="P" * 21)
    with pytest.raises(StoreError, match="UTC offset"):
        store.add_local_token("CARD1", expires_at=datetime(2027, 1, 1))
    assert store.tokens_by_uid("CARD1") == []
    store.add_local_token("CARD1", parent_id_tag="FLEET", expires_at=NEXT_YEAR)
    [card] = store.tokens_by_uid("CARD1")
    assert (card.parent_id_tag, card.expires_at, card.status(datetime.now(UTC))) == (
        "FLEET", NEXT_YEAR, "Accepted")
    assert card.status(NEXT_YEAR) == "Expired"
