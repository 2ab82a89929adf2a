"""Deciding an OCPP idTag with OCPI tokens: whitelist rules, then real-time authorization.

Rules (OCPI 2.2.1 WhitelistType):
- ALWAYS, ALLOWED: a valid stored token is accepted without asking the eMSP.
- ALLOWED_OFFLINE: ask the eMSP first; only when it cannot be reached is a valid stored token
  accepted from the whitelist.
- NEVER, or a token we do not hold: ask the eMSP that issued it, and only that one
  (``POST {tokens}/{uid}/authorize``): the stored token's party, or for a token we do not hold
  the party a routing rule names for its uid prefix; no rule, no asking. No answer means no
  charging; an answer about another party's token counts as none.
- Several stored tokens with one uid: the site's own first, then the routed party's.
- A stored token with ``valid: false`` is refused (Blocked) without asking.
- An idTag that a pending or accepted eMSP command (START_SESSION, RESERVE_NOW) carries to
  this charger is accepted there, until the command stops vouching for it (auth_method
  COMMAND, expiry given to the charger); the rule is the store's ``command_vouching_for``.
- A site card past its expiry is Expired without asking. A decision carries what the
  charger's idTagInfo says besides the status: the expiry (a site card's, or a command's end)
  and the parentIdTag (the token's OCPI group_id).

What the charger is told about an idTag at StopTransaction (``standing``) is what the backend
knows without asking anyone: the command vouching for it, else the stored token's own status
(Blocked, Expired, Accepted), else a recent Accepted decision, else the status the
transaction started with when it is the same idTag, else Invalid.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import ValidationError

from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import (
    ID_TOKEN_MAX_LENGTH,
    AsyncStore,
    AuthDecision,
    StoredToken,
    sender_url,
    utcnow,
)
from chargerfw.logs import get_logger

log = get_logger(__name__)

_ALLOWED_TO_OCPP = {"ALLOWED": "Accepted", "BLOCKED": "Blocked", "EXPIRED": "Expired",
                    "NO_CREDIT": "Invalid", "NOT_ALLOWED": "Invalid"}
# Whitelist rules under which a valid stored token is accepted without asking its eMSP.
WHITELIST_WITHOUT_ASKING = ("ALWAYS", "ALLOWED")
# ... and those under which it may be accepted when the eMSP cannot be asked: the tokens a
# charger's local authorization list holds (it decides by the list when offline).
WHITELIST_OFFLINE = (*WHITELIST_WITHOUT_ASKING, "ALLOWED_OFFLINE")


def _parent(group_id: str | None) -> str | None:
    """An OCPI group_id as an OCPP parentIdTag (None when it does not fit an IdToken)."""
    return group_id if group_id and len(group_id) <= ID_TOKEN_MAX_LENGTH else None


def stored_decision(token: StoredToken, status: str) -> AuthDecision:
    """The decision a stored token gives by itself (whitelisted), with status ``status``."""
    data = token.data
    return AuthDecision(status, "WHITELIST", data["country_code"], data["party_id"],
                        data["type"], data["contract_id"], expires_at=token.expires_at,
                        parent_id_tag=token.parent_id_tag)


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
        vouched = await self._vouched(charge_point_id, id_tag)
        if vouched is not None:
            return vouched
        cached = self._cached(charge_point_id, id_tag)
        if cached is not None:
            return cached
        decision = await self._decide(id_tag, location_id, evse_uid)
        if decision.status == "Accepted":
            self._cache[(charge_point_id, id_tag)] = (time.monotonic(), decision)
        log.info("csms.authorize", charge_point=charge_point_id, status=decision.status,
                 method=decision.auth_method)
        return decision

    async def standing(self, charge_point_id: str, id_tag: str,
                       started_with: tuple[str, str] | None = None) -> AuthDecision:
        """What the backend knows of ``id_tag`` without asking an eMSP (see the module's
        rules); ``started_with`` is the (idTag, status) a transaction started with."""
        known = await self._known(charge_point_id, id_tag)
        if known is not None:
            return known
        if started_with is not None and started_with[0] == id_tag:
            return AuthDecision(started_with[1])
        return AuthDecision("Invalid", "AUTH_REQUEST")

    async def recorded(self, charge_point_id: str, id_tag: str, status: str) -> AuthDecision:
        """A decision already taken (``status``, e.g. the one a stored transaction started
        with) with what the backend now knows of the idTag's expiry and parent."""
        known = await self._known(charge_point_id, id_tag)
        return AuthDecision(status) if known is None else replace(known, status=status)

    async def _known(self, charge_point_id: str, id_tag: str) -> AuthDecision | None:
        vouched = await self._vouched(charge_point_id, id_tag)
        if vouched is not None:
            return vouched
        stored = await self._db(self._db.store.tokens_by_uid, id_tag)
        if stored:
            return stored_decision(stored[0], stored[0].status(utcnow()))
        return self._cached(charge_point_id, id_tag)

    async def _vouched(self, charge_point_id: str, id_tag: str) -> AuthDecision | None:
        vouched = await self._db(self._db.store.command_vouching_for, charge_point_id, id_tag)
        if vouched is None:
            return None
        command, until = vouched
        token = command["request"].get("token", {})
        return AuthDecision("Accepted", "COMMAND", token.get("country_code"),
                            token.get("party_id"), token.get("type"), token.get("contract_id"),
                            command["request"].get("authorization_reference"), until,
                            _parent(token.get("group_id")))

    def _cached(self, charge_point_id: str, id_tag: str) -> AuthDecision | None:
        """A recent Accepted decision, unless it has expired since."""
        cached = self._cache.get((charge_point_id, id_tag))
        if cached is None or time.monotonic() - cached[0] >= self._cache_s:
            return None
        decision = cached[1]
        if decision.expires_at is not None and decision.expires_at <= utcnow():
            return None
        return decision

    async def _decide(self, id_tag: str, location_id: str | None,
                      evse_uid: str | None) -> AuthDecision:
        stored = await self._db(self._db.store.tokens_by_uid, id_tag)
        token = stored[0] if stored else None
        if token is not None:
            status = token.status(utcnow())
            if status != "Accepted" or token.data["whitelist"] in WHITELIST_WITHOUT_ASKING:
                return stored_decision(token, status)
        answer = await self._realtime(id_tag, token.data if token else None, location_id,
                                      evse_uid)
        if answer.decision is not None:
            return answer.decision
        if (token is not None and token.data["whitelist"] == "ALLOWED_OFFLINE"
                and not answer.reachable):
            return stored_decision(token, "Accepted")
        return AuthDecision("Invalid", "AUTH_REQUEST")

    async def _realtime(self, id_tag: str, token: dict[str, Any] | None,
                        location_id: str | None, evse_uid: str | None) -> _RealtimeAnswer:
        """Ask the partner of the party that issued the token (the stored token's, else the
        one a routing rule names for its uid); nobody when no partner is known for it."""
        store = self._db.store
        issuer = ((token["country_code"], token["party_id"]) if token is not None
                  else await self._db(store.route_for_uid, id_tag))
        if issuer is None:
            log.info("csms.authorize.no_issuer", reason="unknown token, no routing rule")
            return _RealtimeAnswer(None, False)
        partner = await self._db(store.partner_of_party, *issuer)
        tokens_url = sender_url(partner["their_endpoints"], "tokens") if partner else None
        if partner is None or not partner["registered"] or tokens_url is None:
            log.info("csms.authorize.no_issuer", reason="no registered partner with a tokens "
                     "sender for the issuing party", party="/".join(issuer))
            return _RealtimeAnswer(None, False)
        body = None
        if location_id is not None:
            body = {"location_id": location_id, "evse_uids": [evse_uid] if evse_uid else None}
            body = {k: v for k, v in body.items() if v is not None}
        try:
            response = await self._http.post(
                f"{tokens_url.rstrip('/')}/{quote(id_tag, safe='')}/authorize",
                params={"type": token["type"] if token else "RFID"}, json=body,
                headers=ocpi_request_headers(
                    partner["their_token"], (store.cpo.country_code, store.cpo.party_id),
                    issuer),
                timeout=self.realtime_timeout_s)
        except httpx.HTTPError as exc:
            log.warning("csms.authorize.unreachable", partner=partner["id"],
                        error=type(exc).__name__)
            return _RealtimeAnswer(None, False)
        if response.status_code >= 500:
            return _RealtimeAnswer(None, False)
        if response.status_code == 404:
            return _RealtimeAnswer(None, True)
        try:
            envelope = m.Envelope[m.AuthorizationInfo].model_validate(response.json())
        except (ValidationError, ValueError):
            log.warning("csms.authorize.bad_answer", partner=partner["id"],
                        http=response.status_code)
            return _RealtimeAnswer(None, True)
        if envelope.data is None or envelope.status_code != 1000:
            return _RealtimeAnswer(None, True)  # 2004: unknown token at this eMSP
        info = envelope.data
        if not await self._db(store.holds_party, partner["id"], info.token.country_code,
                              info.token.party_id):
            # A partner answers for its own tokens only: nothing would bill this session.
            log.warning("csms.authorize.foreign_token", partner=partner["id"],
                        party=f"{info.token.country_code}/{info.token.party_id}")
            return _RealtimeAnswer(None, True)
        return _RealtimeAnswer(AuthDecision(
            _ALLOWED_TO_OCPP[info.allowed], "AUTH_REQUEST", info.token.country_code,
            info.token.party_id, info.token.type, info.token.contract_id,
            info.authorization_reference, parent_id_tag=_parent(info.token.group_id)), True)
