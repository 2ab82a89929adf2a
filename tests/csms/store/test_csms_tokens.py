"""Tokens in the store: put, patch, get; uid and type are the identity."""

from __future__ import annotations

import pytest

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import NotFound, Store


def test_tokens_put_patch_get(store: Store) -> None:
    token = m.Token.model_validate({
        "country_code": "DE", "party_id": "EMS", "uid": "04A1B2", "type": "RFID",
        "contract_id": "DE-EMS-C001", "issuer": "eMSP", "valid": True,
        "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"})
    assert store.put_token(token, None) is True
    assert store.put_token(token, None) is False
    patched = store.patch_token("DE", "EMS", "04A1B2", "RFID", m.TokenPatch.model_validate(
        {"valid": False, "last_updated": "2026-01-02T00:00:00Z"}))
    assert patched["valid"] is False and patched["whitelist"] == "ALLOWED"
    assert store.get_token("DE", "EMS", "04A1B2")["valid"] is False
    assert store.get_token("DE", "EMS", "04A1B2", "APP_USER") is None
    app_token = m.Token.model_validate({**token.model_dump(), "type": "APP_USER",
                                        "valid": True})
    assert store.put_token(app_token, None) is True  # uid + type is the identity
    assert store.get_token("DE", "EMS", "04A1B2", "APP_USER")["valid"] is True
    assert store.get_token("DE", "EMS", "04A1B2")["valid"] is False
    with pytest.raises(NotFound):
        store.patch_token("DE", "EMS", "NOPE", "RFID", m.TokenPatch.model_validate(
            {"valid": False, "last_updated": "2026-01-02T00:00:00Z"}))
