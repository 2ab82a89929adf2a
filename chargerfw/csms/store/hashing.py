"""Secrets at rest: charge point passwords and OCPI credentials tokens (SHA-256 digests);
issuing new credentials tokens and charge point passwords; charge point passwords verified
once per process.

A charge point password is stored under one of two schemes, named at the start of the stored
string, and :func:`verify_password` checks either:

- ``sha256$<salt>$<digest>`` for a password the backend generated itself
  (:func:`generate_password`: 20 random bytes, as the OCPP security whitepaper advises for the
  AuthorizationKey). 160 random bits cannot be guessed whatever the hash's speed, so a plain
  salted SHA-256 protects it as well as scrypt would, and is checked in microseconds: a fleet
  reconnecting after a backend restart costs no slow hash.
- ``scrypt$...`` for a password someone chose (an operator, a bulk file, a charger that
  registered itself): its entropy is unknown, so a guess must stay expensive.

Which scheme a password gets follows from where it came from, not from how it looks: only a
:class:`GeneratedPassword` (made by :func:`generate_password`) gets the fast one; any other
``str`` (and a generated one that went through string operations) gets scrypt.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
GENERATED_PASSWORD_BYTES = 20  # the whitepaper's 16-20 bytes; sent as 40 hex characters
_FAST_SCHEME = "sha256"
_SCRYPT_SCHEME = "scrypt"


class GeneratedPassword(str):
    """A charge point password the backend generated (:func:`generate_password`)."""

    __slots__ = ()


def generate_password() -> GeneratedPassword:
    """A new random charge point password (AuthorizationKey): 20 bytes, hex-encoded, as the
    station expects it and sends it back in Basic auth."""
    return GeneratedPassword(secrets.token_hex(GENERATED_PASSWORD_BYTES))


def hash_password(password: str) -> str:
    """The stored form of a charge point's Basic-auth password: a salted SHA-256 for one the
    backend generated, a salted scrypt for any other."""
    salt = secrets.token_bytes(16)
    if isinstance(password, GeneratedPassword):
        return f"{_FAST_SCHEME}${salt.hex()}${_sha256(salt, password).hex()}"
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R,
                            p=_SCRYPT_P, dklen=32)
    return f"{_SCRYPT_SCHEME}${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def _sha256(salt: bytes, password: str) -> bytes:
    return hashlib.sha256(salt + password.encode()).digest()


def is_slow_hash(stored: str) -> bool:
    """Whether checking a password against ``stored`` takes an scrypt (tens of ms of CPU)."""
    return stored.startswith(f"{_SCRYPT_SCHEME}$")


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a ``hash_password`` result (either
    scheme); False for a stored string of neither."""
    scheme, _, rest = stored.partition("$")
    try:
        if scheme == _FAST_SCHEME:
            salt, digest = rest.split("$")
            return hmac.compare_digest(_sha256(bytes.fromhex(salt), password).hex(), digest)
        if scheme == _SCRYPT_SCHEME:
            n, r, p, salt, digest = rest.split("$")
            candidate = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=int(n),
                                       r=int(r), p=int(p), dklen=len(digest) // 2)
            return hmac.compare_digest(candidate.hex(), digest)
    except ValueError:
        return False
    return False


def token_digest(token: str) -> str:
    """SHA-256 of an OCPI credentials token (random 256-bit values need no slow hash)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_credentials_token() -> str:
    return secrets.token_urlsafe(32)


class VerifiedPasswords:
    """Charge point passwords checked once per process: a charger reconnecting (a whole
    fleet, after a network outage) costs a keyed hash instead of an scrypt each time (a
    password under the fast scheme is simply checked each time).

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
        # scrypt's own threads, one per core (more cannot go faster): a storm of checks
        # queues here, not in the loop's default executor, where the worker lease's renewal
        # and other short jobs would wait behind it.
        self._scrypt = ThreadPoolExecutor(max_workers=os.cpu_count() or 1,
                                          thread_name_prefix="password-check")

    def close(self) -> None:
        """Stop the scrypt threads (checks still queued are dropped)."""
        self._scrypt.shutdown(wait=False, cancel_futures=True)

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
        if not is_slow_hash(stored):
            return verify_password(password, stored)  # microseconds: nothing to remember
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
            if not await asyncio.get_running_loop().run_in_executor(
                    self._scrypt, verify_password, password, stored):
                return False
            self._verified[charge_point_id] = (stored, digest)
            return True
        finally:
            del self._checking[key]
