"""Deciding an OCPP idTag with OCPI tokens: whitelist rules, then real-time authorization.

Rules (OCPI 2.2.1 WhitelistType):
- ALWAYS, ALLOWED: a valid stored token is accepted without asking the eMSP.
- ALLOWED_OFFLINE: ask the eMSP first; only when it cannot be reached is a valid stored token
  accepted from the whitelist.
- NEVER, or a token we do not hold: ask the eMSP (``POST {tokens}/{uid}/authorize``); no
  answer means no charging.
- A stored token with ``valid: false`` is refused (Blocked) without asking.
- An idTag that an eMSP's START_SESSION sent to this charger, or that holds its accepted
  RESERVE_NOW there, is accepted (auth_method COMMAND).
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import AsyncStore, AuthDecision, sender_url
from chargerfw.logs import get_logger

log = get_logger(__name__)

_ALLOWED_TO_OCPP = {"ALLOWED": "Accepted", "BLOCKED": "Blocked", "EXPIRED": "Expired",
                    "NO_CREDIT": "Invalid", "NOT_ALLOWED": "Invalid"}


def ocpi_token_header(token: str) -> dict[str, str]:
    """The OCPI 2.2.1 Authorization header (token base64-encoded)."""
    return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}


def ocpi_request_headers(token: str, sender: tuple[str, str] | None = None,
                         receiver: tuple[str | None, str | None] | None = None,
                         correlation_id: str | None = None) -> dict[str, str]:
    """Headers of a request to a peer: Authorization, X-Request-ID, X-Correlation-ID and,
    when both parties are known, the routing headers OCPI-from-* / OCPI-to-*."""
    headers = ocpi_token_header(token)
    headers["X-Request-ID"] = str(uuid.uuid4())
    headers["X-Correlation-ID"] = correlation_id or str(uuid.uuid4())
    if sender is not None and receiver is not None and receiver[0] and receiver[1]:
        headers.update({"OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1],
                        "OCPI-to-country-code": receiver[0], "OCPI-to-party-id": receiver[1]})
    return headers


@dataclass(frozen=True)
class _RealtimeAnswer:
    decision: AuthDecision | None  # None: the eMSP does not know the token
    reachable: bool


class Authorizer:
    """Turns an idTag into an ``AuthDecision``; remembers recent answers for a few minutes
    so the StartTransaction that follows an Authorize does not ask the eMSP again."""

    def __init__(self, db: AsyncStore, http: httpx.AsyncClient, cache_s: float = 300.0,
                 realtime_timeout_s: float = 5.0) -> None:
        self._db = db
        self._http = http
        # The charger waits for our Authorize answer meanwhile: keep this well under its
        # own call timeout.
        self.realtime_timeout_s = realtime_timeout_s
        self._cache_s = cache_s
        self._cache: dict[tuple[str, str], tuple[float, AuthDecision]] = {}

    def forget(self, id_tag: str) -> None:
        for key in [k for k in self._cache if k[1] == id_tag]:
            del self._cache[key]

    async def authorize(self, charge_point_id: str, id_tag: str,
                        location_id: str | None = None,
                        evse_uid: str | None = None) -> AuthDecision:
        command = await self._db(self._db.store.command_for_id_tag, charge_point_id, id_tag)
        if command is not None:
            token = command["request"].get("token", {})
            return AuthDecision("Accepted", "COMMAND", token.get("country_code"),
                                token.get("party_id"), token.get("type"),
                                token.get("contract_id"),
                                command["request"].get("authorization_reference"))
        key = (charge_point_id, id_tag)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        decision = await self._decide(id_tag, location_id, evse_uid)
        if decision.status == "Accepted":
            self._cache[key] = (time.monotonic(), decision)
        log.info("csms.authorize", charge_point=charge_point_id, status=decision.status,
                 method=decision.auth_method)
        return decision

    async def _decide(self, id_tag: str, location_id: str | None,
                      evse_uid: str | None) -> AuthDecision:
        stored = await self._db(self._db.store.tokens_by_uid, id_tag)
        token = stored[0] if stored else None
        if token is not None:
            whitelisted = AuthDecision("Accepted", "WHITELIST", token["country_code"],
                                       token["party_id"], token["type"], token["contract_id"])
            if not token["valid"]:
                return AuthDecision("Blocked", "WHITELIST", token["country_code"],
                                    token["party_id"], token["type"], token["contract_id"])
            if token["whitelist"] in ("ALWAYS", "ALLOWED"):
                return whitelisted
        answer = await self._realtime(id_tag, token, location_id, evse_uid)
        if answer.decision is not None:
            return answer.decision
        if token is not None and token["whitelist"] == "ALLOWED_OFFLINE" and not answer.reachable:
            return whitelisted
        return AuthDecision("Invalid", "AUTH_REQUEST")

    async def _realtime(self, id_tag: str, token: dict[str, Any] | None,
                        location_id: str | None, evse_uid: str | None) -> _RealtimeAnswer:
        partners = await self._db(self._db.store.list_partners)
        candidates = [(p, tokens_url) for p in partners if p["registered"]
                      and (tokens_url := sender_url(p["their_endpoints"], "tokens"))]
        if token is not None:
            # Ask the eMSP that issued the token first.
            candidates.sort(key=lambda c: (c[0]["country_code"], c[0]["party_id"])
                            != (token["country_code"], token["party_id"]))
        body = None
        if location_id is not None:
            body = {"location_id": location_id, "evse_uids": [evse_uid] if evse_uid else None}
            body = {k: v for k, v in body.items() if v is not None}
        reachable = False
        for partner, tokens_url in candidates:
            url = f"{tokens_url.rstrip('/')}/{id_tag}/authorize"
            token_type = token["type"] if token else "RFID"
            # Through a hub the request is for the token's eMSP; directly, for the partner.
            receiver = ((token["country_code"], token["party_id"])
                        if partner["role"] == "HUB" and token is not None
                        else (partner["country_code"], partner["party_id"]))
            try:
                response = await self._http.post(
                    url, params={"type": token_type}, json=body,
                    headers=ocpi_request_headers(
                        partner["their_token"],
                        (self._db.store.cpo.country_code, self._db.store.cpo.party_id),
                        receiver),
                    timeout=self.realtime_timeout_s)
            except httpx.HTTPError as exc:
                log.warning("csms.authorize.unreachable", partner=partner["id"],
                            error=type(exc).__name__)
                continue
            if response.status_code >= 500:
                continue
            reachable = True
            if response.status_code == 404:
                continue
            try:
                envelope = m.Envelope[m.AuthorizationInfo].model_validate(response.json())
            except (ValidationError, ValueError):
                log.warning("csms.authorize.bad_answer", partner=partner["id"],
                            http=response.status_code)
                continue
            if envelope.data is None or envelope.status_code != 1000:
                continue  # 2004: unknown token at this eMSP
            info = envelope.data
            return _RealtimeAnswer(AuthDecision(
                _ALLOWED_TO_OCPP[info.allowed], "AUTH_REQUEST", info.token.country_code,
                info.token.party_id, info.token.type, info.token.contract_id,
                info.authorization_reference), True)
        return _RealtimeAnswer(None, reachable)
