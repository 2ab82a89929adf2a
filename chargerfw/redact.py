"""Secrets out of what leaves the charger: JSON-like trees (status, outbox payloads), the
station file (comments and layout kept) and free text such as the journal."""

from __future__ import annotations

import re
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


# PEM private keys of any kind ("PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"...),
# also cut short: everything after an unmatched BEGIN goes.
_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)", re.DOTALL)
# An HTTP Authorization header (or a log field named so): its whole value.
_AUTHORIZATION = re.compile(r"(?i)(\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*)[^\r\n]*")
# key=value, key: value and "key": "value" for every secret name; the value is one token, or
# a quoted string.
_SECRET_PAIR = re.compile(
    r"(?i)(\b[\"']?(?:" + "|".join(sorted(SECRET_KEY_NAMES, key=len, reverse=True))
    + r")[\"']?\s*[:=]\s*)(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;}\]]+)")
# A configuration key/value pair naming a secret key: in a ChangeConfiguration frame
# ("key":"AuthorizationKey","value":"...") or a log event (key='AuthorizationKey' value=...).
_SECRET_KEY_VALUE = re.compile(
    r"(?i)([\"']?\bkey[\"']?\s*[:=]\s*[\"']?(?:" + "|".join(SECRET_KEY_NAMES)
    + r")[\"']?\s*,?\s*[\"']?value[\"']?\s*[:=]\s*)"
    r"(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;}\]]+)")
# Credentials in a URL (ws://user:password@host, ftp://user:password@host).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@")


def redact_text(text: str) -> str:
    """Free text (the journal, a log file) with private keys, Authorization headers, the values
    of secret-named fields and passwords in URLs replaced."""
    text = _PEM_PRIVATE_KEY.sub(REDACTED, text)
    text = _AUTHORIZATION.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_KEY_VALUE.sub(lambda m: m.group(1) + REDACTED, text)
    text = _SECRET_PAIR.sub(lambda m: m.group(1) + REDACTED, text)
    return _URL_CREDENTIALS.sub(lambda m: m.group(1) + REDACTED + "@", text)
