"""Secrets out of free text (the journal in the support bundle)."""

from __future__ import annotations

import pytest

from chargerfw.redact import redact_text

KEY = """-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oqEpN9xxQbhcoAoGCCqGSM49
AwEHoUQDQgAEDnB/fu4DhLJIh8JfWdN8hbBGKn+wi1jXUIgFPBPzeKJ0YoMh4yNB
-----END EC PRIVATE KEY-----"""

CASES = [
    ("chargerfw[12]: ocpp.connect password=hunter22 url=ws://x", "hunter22"),
    ("config: AuthorizationKey: 0011223344556677 applied", "0011223344556677"),
    ('{"password": "with \\"quote\\" inside", "ok": 1}', 'with \\"quote\\" inside'),
    ("key_password='pa ss' next", "pa ss"),
    ("Authorization: Basic Q1AxOnNlY3JldA==", "Q1AxOnNlY3JldA=="),
    ("headers={'authorization': 'Bearer abc.def'}", "abc.def"),
    ('[2,"1","ChangeConfiguration",{"key":"AuthorizationKey","value":"deadbeefcafe"}]',
     "deadbeefcafe"),
    ("ocpp.config_changed key='AuthorizationKey' value='00ff00ff00ff'", "00ff00ff00ff"),
    ("config key=AuthorizationKey value=11ee11ee11ee next", "11ee11ee11ee"),
    ("dialing ws://CP1:s3cr3tpw@backend:9000/ocpp", "s3cr3tpw"),
    ("ftp upload ftp://diag:ftppass@10.0.0.1/logs/ failed", "ftppass"),
    (f"loaded key\n{KEY}\nnext line", "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oqEpN9xxQbhcoAoGCCqGSM49"),
    ("half a key -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq", "MIIEvQIBADANBgkq"),
]


@pytest.mark.parametrize(("line", "secret"), CASES)
def test_secrets_are_replaced(line: str, secret: str) -> None:
    redacted = redact_text(line)
    assert secret not in redacted
    assert "***" in redacted


def test_other_text_is_kept() -> None:
    text = ("2026-12-03T10:00:00+0000 pi chargerfw[12]: transaction.started connector=1 "
            "meter_wh=1200 key=HeartbeatInterval value=300\nnext line password-less")
    assert redact_text(text) == text
    assert redact_text("password=x and then the rest\nline two") == \
        "password=*** and then the rest\nline two"
