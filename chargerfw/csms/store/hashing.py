"""Secrets at rest: charge point passwords (salted scrypt) and OCPI credentials tokens
(SHA-256 digests); issuing new credentials tokens; charge point passwords verified once per
process."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str) -> str:
    """A salted scrypt hash of a charge point's Basic-auth password."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` result."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r),
                               p=int(p), dklen=len(digest) // 2)
    return hmac.compare_digest(candidate.hex(), digest)


def token_digest(token: str) -> str:
    """SHA-256 of an OCPI credentials token (random 256-bit values need no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_credentials_token() -> str:
    return secrets.token_urlsafe(32)


class VerifiedPasswords:
    """Charge point passwords checked once per process: a charger reconnecting (a whole
    fleet, after a network outage) costs a keyed hash instead of an scrypt each time.

    Holds, per charge point, the stored hash a password was verified against and an HMAC of
    the password under a key that lives only in this process's memory: a changed stored hash
    no longer matches, and the password itself is never kept. A password not verified yet (a
    wrong one among them) goes through scrypt; one being verified already is not verified a
    second time at once (a charger that gave up its handshake and retries joins the first
    check, which runs on even when its handshake was abandoned).
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._checking: dict[tuple[str, str, bytes], asyncio.Task[bool]] = {}

    def _digest(self, charge_point_id: str, password: str) -> bytes:
        return hmac.new(self._key, f"{charge_point_id}\0{password}".encode(),
                        hashlib.sha256).digest()

    def known(self, charge_point_id: str, password: str, stored: str) -> bool:
        """Whether ``password`` was verified against ``stored`` before."""
        entry = self._verified.get(charge_point_id)
        return entry is not None and entry[0] == stored and hmac.compare_digest(
            entry[1], self._digest(charge_point_id, password))

    async def matches(self, charge_point_id: str, password: str, stored: str) -> bool:
        """Whether ``password`` is the one ``stored`` was hashed from."""
        if self.known(charge_point_id, password, stored):
            return True
        key = (charge_point_id, stored, self._digest(charge_point_id, password))
        check = self._checking.get(key)
        if check is None:
            check = asyncio.create_task(self._check(key, password))
            self._checking[key] = check
        return await asyncio.shield(check)

    async def _check(self, key: tuple[str, str, bytes], password: str) -> bool:
        charge_point_id, stored, digest = key
        try:
            # scrypt is deliberately slow: on a plain thread, not the event loop.
            if not await asyncio.to_thread(verify_password, password, stored):
                return False
            self._verified[charge_point_id] = (stored, digest)
            return True
        finally:
            del self._checking[key]
