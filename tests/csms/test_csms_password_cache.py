"""A charger's verified password is remembered, so a reconnect costs no scrypt; a wrong
password, or one verified against a hash since replaced, goes through scrypt again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from csms_doubles import add_test_charger, basic_auth, csms_running
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chargerfw.csms.store import hash_password, hashing
from chargerfw.csms.store.hashing import VerifiedPasswords, verify_password


async def test_a_verified_password_is_known_only_for_its_charger_and_stored_hash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    scrypts = _counted_scrypts(monkeypatch)
    stored = hash_password("s3cret")
    verified = VerifiedPasswords()
    assert not verified.known("CP1", "s3cret", stored)
    # Three handshakes at once, one abandoned: one scrypt, and its result is kept.
    first = asyncio.create_task(verified.matches("CP1", "s3cret", stored))
    await asyncio.sleep(0)
    first.cancel()
    assert await asyncio.gather(verified.matches("CP1", "s3cret", stored),
                                verified.matches("CP1", "s3cret", stored)) == [True, True]
    assert scrypts == ["s3cret"]
    assert verified.known("CP1", "s3cret", stored)
    assert not verified.known("CP1", "other", stored)
    assert not verified.known("CP2", "s3cret", stored)
    assert not verified.known("CP1", "s3cret", hash_password("s3cret"))  # a new hash
    assert not await verified.matches("CP1", "other", stored)


def _counted_scrypts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    scrypts: list[str] = []

    def counted(password: str, stored: str) -> bool:
        scrypts.append(password)
        return verify_password(password, stored)

    monkeypatch.setattr(hashing, "verify_password", counted)
    return scrypts


async def test_reconnects_skip_scrypt_until_the_password_changes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scrypts = _counted_scrypts(monkeypatch)
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


async def test_a_storm_of_password_checks_leaves_the_default_executor_free() -> None:
    """The checks queue on threads of their own: other short jobs of the process (a worker
    lease's renewal among them) run at once, not after the storm."""
    stored = {f"CP{n}": hash_password(f"pw{n}") for n in range(24)}
    verified = VerifiedPasswords()
    try:
        checks = [asyncio.create_task(verified.matches(cp, f"pw{n}", stored[cp]))
                  for n, cp in enumerate(stored)]
        await asyncio.sleep(0.05)  # the checks have started
        await asyncio.to_thread(lambda: None)
        done_when_served = sum(check.done() for check in checks)
        assert await asyncio.gather(*checks) == [True] * len(checks)
        assert done_when_served < len(checks) // 2
    finally:
        verified.close()
