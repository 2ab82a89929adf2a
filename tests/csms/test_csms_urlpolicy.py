"""The outgoing-URL policy: which URLs are refused, names checked by what they resolve to,
and the HTTP transport that connects only to the address it checked."""

from __future__ import annotations

import pytest
from csms_doubles import EmspDouble, ocpi_auth, running_emsp

from chargerfw.csms.urlpolicy import (
    LOOPBACK_NETWORKS,
    Resolver,
    UrlPolicy,
    UrlRefused,
    guarded_client,
    parse_networks,
)

pytestmark = pytest.mark.timeout(30)


def resolving(table: dict[str, list[str]]) -> Resolver:
    async def resolver(host: str, _port: int) -> list[str]:
        if host not in table:
            raise OSError("no such name")
        return table[host]
    return resolver


NAMES = {"public.example": ["93.184.216.34"], "inside.example": ["10.1.2.3"],
         "mixed.example": ["93.184.216.34", "127.0.0.1"], "loop.example": ["127.0.0.1"],
         "mapped.example": ["::ffff:192.168.1.1"]}


@pytest.mark.parametrize("url, reason", [
    ("ftp://public.example/", "only http and https"),
    ("javascript:alert(1)", "only http and https"),
    ("http://user:secret@public.example/", "credentials"),
    ("http:///path", "no host"),
    ("http://127.0.0.1:9001/", "not a public address"),
    ("http://[::1]/", "not a public address"),
    ("http://[::ffff:127.0.0.1]/", "not a public address"),
    ("http://169.254.169.254/latest/", "not a public address"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://0.0.0.0/", "not a public address"),
    ("http://224.0.0.1/", "not a public address"),
    ("http://inside.example/", "resolves to 10.1.2.3"),
    ("http://mixed.example/", "resolves to 127.0.0.1"),
    ("https://mapped.example/", "resolves to ::ffff:c0a8:101"),
    ("http://unknown.example/", "cannot resolve"),
])
async def test_refused(url: str, reason: str) -> None:
    policy = UrlPolicy(resolver=resolving(NAMES))
    with pytest.raises(UrlRefused, match=reason):
        await policy.check(url)


async def test_allowed() -> None:
    policy = UrlPolicy(resolver=resolving(NAMES))
    assert [str(a) for a in await policy.check("https://public.example:8443/x")] == [
        "93.184.216.34"]
    assert [str(a) for a in await policy.check("http://8.8.8.8/")] == ["8.8.8.8"]
    opened = UrlPolicy.allowing(["10.0.0.0/8", *LOOPBACK_NETWORKS],
                                resolver=resolving(NAMES))
    await opened.check("http://inside.example/")
    await opened.check("http://mixed.example/")
    await opened.check("http://[::1]:9/")
    with pytest.raises(UrlRefused):
        await opened.check("http://169.254.169.254/")
    with pytest.raises(ValueError, match="not an IP network"):
        parse_networks(["10.0.0.0/8", "ten"])


async def test_transport_connects_to_the_checked_address() -> None:
    emsp = EmspDouble()
    async with running_emsp(emsp):
        url = f"http://partner.example:{emsp.port}/emsp/versions"
        names = {"partner.example": ["127.0.0.1"]}
        # Not resolvable by the system, yet reached: the request goes to the address the
        # policy checked, with the name in the Host header.
        allowed = UrlPolicy.allowing(LOOPBACK_NETWORKS,
                                     resolver=resolving(names))
        async with guarded_client(allowed, 5) as http:
            answer = await http.get(url, headers=ocpi_auth(emsp.token_b))
            assert answer.status_code == 200 and answer.json()["status_code"] == 1000
            assert answer.request.headers["Host"] == f"partner.example:{emsp.port}"
        strict = UrlPolicy(resolver=resolving(names))
        async with guarded_client(strict, 5) as http:
            with pytest.raises(UrlRefused, match="resolves to 127.0.0.1"):
                await http.get(url)
            with pytest.raises(UrlRefused, match="not a public address"):
                await http.get(f"{emsp.base}/emsp/versions")
