"""Secrets at rest: charge point passwords (salted scrypt) and OCPI credentials tokens
(SHA-256 digests); and issuing new credentials tokens."""

from __future__ import annotations

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
    """The passwords this process verified, so a charger reconnecting (a whole fleet, after a
    network outage) costs a keyed hash instead of an scrypt each time.

    Holds, per charge point, the stored hash the password was verified against and an
    HMAC of the password under a key that lives only in this process's memory: a changed
    stored hash no longer matches, and the password itself is never kept. A password that
    is not remembered (a wrong one among them) goes through scrypt as before.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[str, bytes]] = {}

    def _digest(self, charge_point_id: str, password: str) -> bytes:
        return hmac.new(self._key, f"{charge_point_id}\0{password}".encode(),
                        hashlib.sha256).digest()

    def known(self, charge_point_id: str, password: str, stored: str) -> bool:
        """Whether ``password`` was verified against ``stored`` before."""
        entry = self._verified.get(charge_point_id)
        return entry is not None and entry[0] == stored and hmac.compare_digest(
            entry[1], self._digest(charge_point_id, password))

    def remember(self, charge_point_id: str, password: str, stored: str) -> None:
        """``password`` was just verified against ``stored`` (replaces what was known)."""
        self._verified[charge_point_id] = (stored, self._digest(charge_point_id, password))
