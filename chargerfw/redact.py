"""Secrets out of what leaves the charger: JSON-like trees (status, outbox payloads) and the
station file (comments and layout kept)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import tomlkit

REDACTED = "***"
# Config and payload keys whose values never leave the charger.
SECRET_KEY_NAMES = frozenset({"password", "authorizationkey", "authorization_key", "secret",
                              "token", "private_key", "key_password"})


def is_secret_key(name: str) -> bool:
    return name.lower() in SECRET_KEY_NAMES


def redact(node: Any) -> Any:
    """A copy of a JSON-like tree with the values of secret-named keys replaced."""
    if isinstance(node, Mapping):
        return {k: (REDACTED if is_secret_key(str(k)) and v not in (None, "") else redact(v))
                for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [redact(v) for v in node]
    return node


def redact_toml_text(text: str) -> str:
    """The station file with secret values replaced, comments and layout kept."""
    document = tomlkit.parse(text)

    def scrub(table: Any) -> None:
        for key in list(table.keys()):
            value = table[key]
            if isinstance(value, Mapping):
                scrub(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, Mapping):
                        scrub(item)
            elif is_secret_key(str(key)) and value not in (None, ""):
                table[key] = REDACTED

    scrub(document)
    return tomlkit.dumps(document)
