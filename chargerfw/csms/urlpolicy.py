"""Which URLs the backend may call: partners hand us URLs (their versions and credentials
URLs, their endpoints, a command's ``response_url``), and each must lead to a public
http(s) server, never into the backend's own network.

One rule (``UrlPolicy.check``) applies wherever such a URL is accepted; ``GuardedTransport``
applies the same rule to every request the backend's HTTP client sends, at connect time and
to the address it then connects to, so a name that resolved to a public address when it was
accepted cannot point at a private one later.

Refused: schemes other than http and https, user info in the URL, and any address that is
not globally routable (loopback, private, link-local, carrier-grade NAT, multicast,
reserved, unspecified), unless it lies in a network the operator allowed
(``allowed_networks``; tests and the bench allow loopback).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
# host, port -> the addresses a connection to it may use
Resolver = Callable[[str, int], Awaitable[list[str]]]

LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


class UrlRefused(httpx.TransportError):
    """A URL (or the address it resolves to) the policy does not let the backend call.

    An ``httpx.TransportError``, so code that treats an unreachable partner as such treats a
    refused one the same way."""


async def resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host``."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDR networks (``10.0.0.0/8``, ``::1/128``); ValueError names the first bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"not an IP network: {value!r}") from None
    return tuple(networks)


@dataclass(frozen=True)
class UrlPolicy:
    """Where outgoing calls may go. ``allowed_networks`` opens otherwise refused ranges."""

    allowed_networks: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=resolve, compare=False)

    @classmethod
    def allowing(cls, networks: Sequence[str], resolver: Resolver = resolve) -> UrlPolicy:
        return cls(parse_networks(networks), resolver)

    def address_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return True
        return address.is_global and not address.is_multicast

    def check_form(self, url: str) -> httpx.URL:
        """The URL parsed, when its form is acceptable: http(s), a host, no user info, and
        an allowed address if the host is an IP literal. Raises UrlRefused."""
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError):
            raise UrlRefused(f"not a URL: {url[:100]!r}") from None
        if parsed.scheme not in ("http", "https"):
            raise UrlRefused(f"only http and https URLs are allowed, not {parsed.scheme!r}")
        if not parsed.host:
            raise UrlRefused("the URL has no host")
        if parsed.userinfo:
            raise UrlRefused("credentials in the URL are not allowed")
        literal = _ip_literal(parsed.host)
        if literal is not None and not self.address_allowed(literal):
            raise UrlRefused(f"{parsed.host} is not a public address")
        return parsed

    async def check(self, url: str) -> list[IPAddress]:
        """Accept ``url`` or raise UrlRefused: its form, then every address its host
        resolves to (all must be allowed). Returns those addresses."""
        parsed = self.check_form(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        literal = _ip_literal(parsed.host)
        if literal is not None:
            return [literal]
        try:
            found = await self.resolver(parsed.host, port)
        except (OSError, UnicodeError):
            raise UrlRefused(f"cannot resolve {parsed.host}") from None
        addresses = [a for a in (_ip_literal(value) for value in found) if a is not None]
        if not addresses:
            raise UrlRefused(f"cannot resolve {parsed.host}")
        refused = [a for a in addresses if not self.address_allowed(a)]
        if refused:
            raise UrlRefused(f"{parsed.host} resolves to {refused[0]}, not a public address")
        return addresses


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


class GuardedTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that checks every request against a ``UrlPolicy`` and connects to
    the address it checked (the Host header and TLS server name stay the URL's host).

    Connections are pooled per host name: requests to two names served from one address
    never share a connection (nor the TLS session made for the other name)."""

    def __init__(self, policy: UrlPolicy) -> None:
        self.policy = policy
        self._pools: dict[str, httpx.AsyncHTTPTransport] = {}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        addresses = await self.policy.check(str(request.url))
        if _ip_literal(host) is None:
            if request.url.scheme == "https":
                request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=str(addresses[0]))
        pool = self._pools.get(host)
        if pool is None:
            pool = self._pools[host] = httpx.AsyncHTTPTransport()
        return await pool.handle_async_request(request)

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()


def guarded_client(policy: UrlPolicy, timeout: float) -> httpx.AsyncClient:
    """The backend's HTTP client for calls to partners, held to ``policy``."""
    return httpx.AsyncClient(timeout=timeout, transport=GuardedTransport(policy))
