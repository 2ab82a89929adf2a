"""Reading a partner's paginated Sender list (tokens, hub client info): GET the first page,
then follow ``Link: <...>; rel="next"`` until there is none.

The next-page link comes from the partner; it is followed only on the partner's own origin
(scheme, host and port of the endpoint), so our credentials token goes nowhere else, and
only while it makes progress.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx

# A guard against a partner that links pages forever.
MAX_PAGES = 10_000


class PullError(Exception):
    """The list could not be read; ``str()`` says why (nothing secret)."""


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port


async def fetch_pages(http: httpx.AsyncClient, url: str, params: dict[str, str],
                      headers: dict[str, str]) -> AsyncIterator[list[Any]]:
    """Each page's ``data`` list, in order; raises PullError."""
    first = httpx.URL(url)
    next_url: httpx.URL | None = first.copy_merge_params(params)
    seen: set[str] = set()
    pages = 0
    while next_url is not None:
        if str(next_url) in seen or pages >= MAX_PAGES:
            raise PullError("the partner's next-page links do not end")
        seen.add(str(next_url))
        pages += 1
        try:
            response = await http.get(next_url, headers=headers)
        except httpx.HTTPError as exc:
            raise PullError(f"partner unreachable: {type(exc).__name__}") from None
        if not 200 <= response.status_code < 300:
            raise PullError(f"partner answered HTTP {response.status_code}")
        try:
            envelope = response.json()
        except ValueError:
            raise PullError("partner answered no JSON") from None
        if not isinstance(envelope, dict) or envelope.get("status_code") != 1000:
            status = envelope.get("status_code") if isinstance(envelope, dict) else None
            raise PullError(f"partner answered OCPI status {status}")
        data = envelope.get("data")
        if data is None:
            data = []
        if not isinstance(data, list):
            raise PullError("partner's data is not a list")
        yield data
        link = response.links.get("next", {}).get("url")
        next_url = None
        if link:
            try:
                candidate = first.join(link)
            except httpx.InvalidURL:
                raise PullError("partner's next-page link is not a URL") from None
            if _origin(candidate) != _origin(first):
                raise PullError("partner's next-page link leaves its own host")
            next_url = candidate
