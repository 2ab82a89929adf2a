"""A partner's OCPI endpoints (as stored from its version details): where a module is, and
where a Receiver keeps one of our objects."""

from __future__ import annotations

from typing import Any


def receiver_url(endpoints: list[dict[str, Any]] | None, module: str) -> str | None:
    """The URL of a partner's RECEIVER endpoint for ``module``."""
    return _url(endpoints, module, "RECEIVER")


def sender_url(endpoints: list[dict[str, Any]] | None, module: str) -> str | None:
    """The URL of a partner's SENDER endpoint for ``module`` (e.g. eMSP tokens)."""
    return _url(endpoints, module, "SENDER")


def _url(endpoints: list[dict[str, Any]] | None, module: str, role: str) -> str | None:
    for endpoint in endpoints or []:
        if endpoint.get("identifier") == module and endpoint.get("role") == role:
            return str(endpoint["url"])
    return None


def object_url(base: str, country_code: str, party_id: str, *object_ids: str) -> str:
    """Where a Receiver keeps one of our objects: ``{base}/{country_code}/{party_id}/{id}``
    (``.../{location_id}/{evse_uid}`` for an EVSE)."""
    return "/".join([base, country_code, party_id, *object_ids])
