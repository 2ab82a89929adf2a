"""The AuthorizationKey (the Basic auth password of security profiles 1 and 2) in a file only
the service user can read (``[security]`` ``authorization_key_file``), never in the store,
which the service's group may read.

A new key does not replace the old one at once: the backend may not know it yet (or ever, if
it failed to save it), and a station whose only key the backend refuses is locked out. Until
the new key has worked once, the old one stays as a fallback: each connection tries the new
key first, then the old. Once the new key worked, the old one is forgotten.

The file is JSON: ``{"key": newest, "fallback": the key that last worked, or null}``. Without
the file the station's ``[ocpp] password`` is the key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from chargerfw.durable import write_atomically
from chargerfw.logs import get_logger

log = get_logger(__name__)

STORE_KEY = "AuthorizationKey"


class KeyStore(Protocol):
    def config_get(self, key: str) -> str | None: ...
    def config_set(self, key: str, value: str) -> None: ...


class AuthorizationKeyFile:
    """The station's AuthorizationKey and its fallback, over ``path``."""

    def __init__(self, path: Path, provisioned: str | None = None) -> None:
        self.path = path
        self._provisioned = provisioned or None
        self._key: str | None = None
        self._fallback: str | None = None
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            # A station must still try to connect: with the config's password.
            log.error("ocpp.authorization_key_unreadable", path=str(self.path),
                      error=type(exc).__name__)
            return
        key, fallback = (data.get("key"), data.get("fallback")) if isinstance(data, dict) else (
            None, None)
        if not isinstance(key, str) or not key or not isinstance(fallback, str | None):
            log.error("ocpp.authorization_key_unreadable", path=str(self.path),
                      error="not {key, fallback}")
            return
        self._key, self._fallback = key, fallback or None

    @property
    def key(self) -> str | None:
        """The newest key (None: no key set, nor a password in the config)."""
        return self._key or self._provisioned

    @property
    def pending(self) -> bool:
        """A new key has not worked yet (the old one is kept as the fallback)."""
        return self._fallback is not None

    def passwords(self) -> list[str]:
        """What a connection tries, in order: the newest key, then its fallback."""
        key = self.key
        if key is None:
            return []
        return [key] if self._fallback in (None, key) else [key, self._fallback]

    def set(self, key: str) -> None:
        """A new key (ChangeConfiguration AuthorizationKey, or a technician): tried first
        from now on, the key that last worked kept as its fallback until it works."""
        fallback = self._fallback if self._fallback is not None else self.key
        self._write(key, None if fallback == key else fallback)
        log.info("ocpp.authorization_key_set", fallback_kept=self._fallback is not None)

    def worked(self, password: str) -> None:
        """The backend accepted ``password``: the new key worked, its fallback goes."""
        if self._fallback is not None and password == self._key:
            self._write(password, None)
            log.info("ocpp.authorization_key_confirmed")

    def adopt_from_store(self, store: KeyStore) -> None:
        """Move a key an older release kept in the store into the file, and blank it there."""
        stored = store.config_get(STORE_KEY)
        if not stored:
            return
        if self._key is None:
            try:
                self._write(stored, None)
            except OSError as exc:  # e.g. a simulated station without the certificate store
                log.error("ocpp.authorization_key_not_moved", path=str(self.path),
                          error=f"{type(exc).__name__}: {exc}")
                self._key = stored  # used, and left in the store until it can be moved
                return
        store.config_set(STORE_KEY, "")
        log.info("ocpp.authorization_key_moved", path=str(self.path))

    def _write(self, key: str, fallback: str | None) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps({"key": key, "fallback": fallback}).encode(),
                         0o600)
        self._key, self._fallback = key, fallback
