"""Where a webhook may send: http(s) URLs whose host resolves only to public internet addresses.

One policy for the API, which checks a URL when an admin sets it, and the publisher, which checks it again
at every send and then connects to the address it checked (so a DNS answer that changes in between, DNS
rebinding, cannot send a delivery into the server's own network). Names are resolved with the system
resolver (getaddrinfo), never parsed by hand: `2130706433`, `0x7f.1` and `[::ffff:127.0.0.1]` are all
127.0.0.1. The `WEBHOOK_ALLOW_PRIVATE_NETWORKS` setting lifts the address rule for receivers on this
machine or its network (the demo, tests, a self-hosted install); the URL must still be http(s) and resolve.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"http": 80, "https": 443}
OPT_IN_SETTING = "WEBHOOK_ALLOW_PRIVATE_NETWORKS"
# A resolver that does not answer within this is a failure, not a hung request.
RESOLVE_TIMEOUT_SECONDS = 5.0

_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT; neither private nor global
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # well-known NAT64 prefix: the last 32 bits are an IPv4 address
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


class DestinationError(ValueError):
    """The URL cannot receive webhooks; the message says why, in words for the tenant's admin."""

    code: ClassVar[str] = "unusable_destination"  # the API's error type


class UnusableUrl(DestinationError):
    """Not an http(s) URL with a host (and a valid port)."""

    code = "unusable_url"


class UnresolvedHost(DestinationError):
    """The host name does not resolve (or not in time)."""

    code = "unresolved_host"


class NonPublicAddress(DestinationError):
    """The host is, or resolves to, an address that is not on the public internet."""

    code = "non_public_address"

    def __init__(self, message: str, address: IPAddress) -> None:
        super().__init__(message)
        self.address = address


@dataclass(frozen=True)
class Destination:
    """A checked URL: every address its host resolved to passed the policy; connect to one of these."""

    scheme: str
    host: str  # as in the URL, lower case, IDNA-encoded; an IPv6 address without brackets
    port: int
    explicit_port: bool
    addresses: tuple[str, ...]

    @property
    def host_is_address(self) -> bool:
        return _as_address(self.host) is not None

    @property
    def host_header(self) -> str:
        """The Host header the URL implies: the request goes to a checked address but names the original host."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.explicit_port else host


def why_not_public(address: IPAddress) -> str | None:
    """What kind of non-public address this is ("a loopback address"), or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = why_not_public(embedded)
            return None if inner is None else f"an IPv6 form of {embedded}, {inner}"
    return _kind(address)


def _kind(address: IPAddress) -> str | None:
    v6 = isinstance(address, ipaddress.IPv6Address)
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if v6 and address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if isinstance(address, ipaddress.IPv6Address) and (address.is_site_local or address in _LOCAL_NAT64):
        return "a site-local address"
    if not v6 and address in _SHARED:
        return "a shared (carrier-grade NAT) address"
    if any(address in network for network in _RFC1918):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private or not address.is_global:
        return "a special-purpose address, not globally routable"
    return None


def _as_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def lookup(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for `host` (numeric forms such as 2130706433 included).
    Tests replace this to play DNS."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """The distinct addresses of `host`, in the resolver's order; `UnresolvedHost` when there are none."""
    try:
        found = await asyncio.wait_for(lookup(host, port), RESOLVE_TIMEOUT_SECONDS)
    except TimeoutError:
        raise UnresolvedHost(f"the host name {host} did not resolve within {RESOLVE_TIMEOUT_SECONDS:g} s") from None
    except (OSError, UnicodeError) as exc:
        detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UnresolvedHost(f"the host name {host} does not resolve ({detail})") from None
    addresses = tuple(dict.fromkeys(a for a in map(_as_address, found) if a is not None))
    if not addresses:
        raise UnresolvedHost(f"the host name {host} does not resolve to any address")
    return addresses


def parse(url: str) -> tuple[str, str, int, bool]:
    """(scheme, host, port, whether the port was written) of an http(s) URL, or `UnusableUrl`."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        host = parts.hostname
        port = parts.port
    except ValueError as exc:
        raise UnusableUrl(f"the URL is not valid: {exc}") from None
    if scheme not in DEFAULT_PORTS:
        raise UnusableUrl("the URL must start with http:// or https://")
    if not host:
        raise UnusableUrl("the URL must name a host")
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise UnusableUrl(f"the host name {host!r} is not valid") from None
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme], port is not None


async def check_url(url: str, *, allow_private_networks: bool) -> Destination:
    """The URL as a `Destination` whose every address may receive webhooks; else a `DestinationError` naming
    the address and why. Without the opt-in, one non-public address among several refuses the URL: the
    resolver could hand out any of them."""
    scheme, host, port, explicit_port = parse(url)
    addresses = await resolve(host, port)
    if not allow_private_networks:
        for address in addresses:
            reason = why_not_public(address)
            if reason is None:
                continue
            literal = _as_address(host)
            where = f"{host} is" if literal is not None and literal == address else f"{host} resolves to {address},"
            raise NonPublicAddress(
                f"{where} {reason}; a webhook must point at a public internet address "
                f"(a receiver on a private network needs the server setting {OPT_IN_SETTING}=true)",
                address,
            )
    return Destination(scheme, host, port, explicit_port, tuple(str(a) for a in addresses))


__all__ = [
    "OPT_IN_SETTING",
    "Destination",
    "DestinationError",
    "NonPublicAddress",
    "UnresolvedHost",
    "UnusableUrl",
    "check_url",
    "lookup",
    "parse",
    "resolve",
    "why_not_public",
]
