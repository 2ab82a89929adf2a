"""The OCPI credentials handshake, from both sides.

- ``fetch_peer_endpoints``: read a peer's versions and 2.2.1 endpoints with a token (used when
  an eMSP registers with us, and when we register with an eMSP).
- ``register_with_peer``: we hold the eMSP's CREDENTIALS_TOKEN_A and start the handshake:
  issue our token B, POST our credentials to them, keep the token C they answer with (when
  they declare only the parties the operator gave them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError

from chargerfw.csms.authorization import ocpi_request_headers
from chargerfw.csms.ocpi import models as m
from chargerfw.csms.store import AsyncStore, Party, PartyNotAllowed, StoreError, receiver_url
from chargerfw.csms.urlpolicy import UrlPolicy, UrlRefused
from chargerfw.logs import get_logger

log = get_logger(__name__)


class HandshakeError(Exception):
    """The peer's API could not be used; ``status_code`` is the OCPI code to report."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code


@dataclass(frozen=True)
class PeerEndpoints:
    version_url: str
    endpoints: list[dict[str, Any]]


async def check_peer_url(policy: UrlPolicy, url: str, what: str) -> None:
    """HandshakeError 2001 unless the policy lets us call ``url``."""
    try:
        await policy.check(url)
    except UrlRefused as exc:
        raise HandshakeError(2001, f"{what} refused: {exc}") from None


async def fetch_peer_endpoints(http: httpx.AsyncClient, versions_url: str, token: str,
                               policy: UrlPolicy) -> PeerEndpoints:
    """GET the peer's versions, then its 2.2.1 details; raises HandshakeError.

    Every URL the peer gives is held to ``policy`` before it is called or kept, and a peer
    that cannot be used gets one answer whatever went wrong (the details are logged), so
    the handshake tells a caller nothing about what answers at a URL.
    """
    await check_peer_url(policy, versions_url, "versions url")
    headers = ocpi_request_headers(token)
    try:
        answer = (await http.get(versions_url, headers=headers)).raise_for_status()
        versions = m.Envelope[list[m.Version]].model_validate(answer.json()).data or []
        match = [v for v in versions if v.version == m.VERSION]
        if not match:
            raise HandshakeError(3002, f"peer offers no OCPI {m.VERSION}")
        await check_peer_url(policy, match[0].url, "version details url")
        answer = (await http.get(match[0].url, headers=headers)).raise_for_status()
        details = m.Envelope[m.VersionDetails].model_validate(answer.json()).data
    except (httpx.HTTPError, ValidationError, ValueError) as exc:
        log.info("ocpi.peer_unusable", error=type(exc).__name__)
        raise HandshakeError(3001, "unable to use the client's API") from None
    if details is None or not details.endpoints:
        raise HandshakeError(3003, "no matching endpoints")
    for endpoint in details.endpoints:
        await check_peer_url(policy, endpoint.url, f"{endpoint.identifier} endpoint url")
    return PeerEndpoints(match[0].url, [e.model_dump(mode="json") for e in details.endpoints])


def declared_parties(credentials: m.Credentials) -> list[Party]:
    """The roles a Credentials object declares, as parties; a malformed party (``;&``) is
    a HandshakeError 2001."""
    try:
        return [Party(r.country_code, r.party_id, str(r.role)) for r in credentials.roles]
    except StoreError as exc:
        raise HandshakeError(2001, f"invalid or missing parameters: roles: {exc}") from None


def credentials_for(token: str, versions_url: str, business_name: str, country_code: str,
                    party_id: str) -> dict[str, Any]:
    """Our OCPI Credentials object carrying ``token``."""
    return m.Credentials.model_validate({
        "token": token, "url": versions_url,
        "roles": [{"role": "CPO", "business_details": {"name": business_name},
                   "party_id": party_id, "country_code": country_code}],
    }).model_dump(mode="json", exclude_none=True)


async def register_with_peer(db: AsyncStore, http: httpx.AsyncClient, versions_url: str,
                             token_a: str, our_versions_url: str, name: str,
                             parties: Sequence[Party], *, policy: UrlPolicy) -> int:
    """Register with an eMSP (or a hub) that gave us its TOKEN_A; returns our partner id for
    it.

    The partner is fixed to ``parties``: when the peer declares another, the registration
    fails (2001). Our API must be reachable at ``our_versions_url`` meanwhile: the peer
    reads our endpoints with the token we send. On failure nothing is kept. The peer's URLs
    are held to ``policy``.
    """
    store = db.store
    if not parties:
        raise HandshakeError(2001, "give the partner's parties (COUNTRY/PARTY[/ROLE])")
    peer = await fetch_peer_endpoints(http, versions_url, token_a, policy)
    credentials_url = receiver_url(peer.endpoints, "credentials") or next(
        (e["url"] for e in peer.endpoints if e.get("identifier") == "credentials"), None)
    if credentials_url is None:
        raise HandshakeError(3003, "peer has no credentials endpoint")
    try:
        partner_id, token_b = await db(store.add_initiating_partner, name, parties)
    except StoreError as exc:
        raise HandshakeError(2001, str(exc)) from None
    try:
        body = credentials_for(token_b, our_versions_url, store.cpo.name,
                               store.cpo.country_code, store.cpo.party_id)
        try:
            answer = (await http.post(credentials_url, json=body,
                                      headers=ocpi_request_headers(token_a))).raise_for_status()
            envelope = m.Envelope[m.Credentials].model_validate(answer.json())
        except (httpx.HTTPError, ValidationError, ValueError) as exc:
            raise HandshakeError(3001, f"peer refused our credentials: "
                                       f"{type(exc).__name__}") from None
        theirs = envelope.data
        if theirs is None or envelope.status_code != 1000:
            raise HandshakeError(3001, f"peer refused our credentials: "
                                       f"{envelope.status_message}")
        # Their endpoints again, now with the token they gave us (TOKEN_C).
        peer = await fetch_peer_endpoints(http, theirs.url, theirs.token, policy)
        try:
            await db(store.complete_registration, partner_id, theirs.token, theirs.url,
                     m.VERSION, peer.endpoints, declared_parties(theirs))
        except PartyNotAllowed as exc:
            raise HandshakeError(2001, f"peer declared other parties: {exc}") from None
    except BaseException:
        await db(store.delete_partner, partner_id)
        raise
    await db(store.queue_full_sync, partner_id)
    log.info("ocpi.registered_with_peer", partner=partner_id)
    return partner_id
