"""A charger's verified password is remembered, so a reconnect costs no scrypt; a wrong
password, or one verified against a hash since replaced, goes through scrypt again."""

from __future__ import annotations

from pathlib import Path

import pytest
from csms_doubles import add_test_charger, basic_auth, csms_running
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargerfw.csms import ocpp_server
from chargerfw.csms.store import hash_password
from chargerfw.csms.store.hashing import VerifiedPasswords, verify_password


def test_remembered_password_is_known_only_for_its_charger_and_stored_hash() -> None:
    stored = hash_password("s3cret")
    verified = VerifiedPasswords()
    assert not verified.known("CP1", "s3cret", stored)
    verified.remember("CP1", "s3cret", stored)
    assert verified.known("CP1", "s3cret", stored)
    assert not verified.known("CP1", "other", stored)
    assert not verified.known("CP2", "s3cret", stored)
    assert not verified.known("CP1", "s3cret", hash_password("s3cret"))  # a new hash


async def test_reconnects_skip_scrypt_until_the_password_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scrypts: list[str] = []

    def counted(password: str, stored: str) -> bool:
        scrypts.append(password)
        return verify_password(password, stored)

    monkeypatch.setattr(ocpp_server, "verify_password", counted)
    async with csms_running(str(tmp_path / "c.db")) as csms:
        await csms.db(add_test_charger, csms.store, "CP1", "s3cret")
        url = f"{csms.ocpp_url}/CP1"

        async def connects(password: str) -> bool:
            try:
                async with connect(url, subprotocols=["ocpp1.6"],
                                   additional_headers=basic_auth("CP1", password)):
                    return True
            except InvalidStatus as refused:
                assert refused.response.status_code == 401
                return False

        assert await connects("s3cret") and await connects("s3cret")
        assert scrypts == ["s3cret"]
        assert not await connects("wrong")
        assert scrypts == ["s3cret", "wrong"]
        await csms.db(csms.store.replace_password, "CP1", "n3w-pass")
        assert not await connects("s3cret")
        assert await connects("n3w-pass") and await connects("n3w-pass")
        assert scrypts == ["s3cret", "wrong", "s3cret", "n3w-pass"]
