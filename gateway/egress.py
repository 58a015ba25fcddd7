"""The dialled-address check: no SSRF, no DNS rebinding (design, step 3).

The policy decides which host *names* an agent may call; this module decides which *addresses*
the gateway may dial, whatever the name says. A name is resolved once, every address it resolves
to is checked, and the connection goes to the address that was checked, so a name cannot be
re-resolved to somewhere else between the check and the dial (DNS rebinding).

Refused: loopback, private networks, link-local, cloud metadata endpoints, CGNAT, unique local,
unspecified, multicast, broadcast, reserved and documentation ranges, and the gateway's own
listeners. IPv6 addresses that carry an IPv4 address (IPv4-mapped, 6to4, NAT64, Teredo, ...) are
judged by the IPv4 address they carry, which is where the packets end up.

`private_networks_allowed` lifts only the refusal of private, CGNAT and unique local addresses
(internal services). Loopback, link-local and metadata stay refused: they reach the gateway's own
host and the cloud's credential endpoints, never an internal API. An operator who really means
one of those pins it with `--connect-to`, which trusts that one target and nothing else.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from gateway.hostnames import normalise_host

IPAddress = IPv4Address | IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]  # (host, port) -> addresses


class AddressClass(StrEnum):
    """The fixed reasons an address is refused (log lines, responses and metrics say these)."""

    LOOPBACK = "loopback address"
    PRIVATE = "private network address (RFC 1918)"
    LINK_LOCAL = "link-local address"
    METADATA = "cloud metadata address"
    CGNAT = "shared address space (CGNAT, RFC 6598)"
    UNIQUE_LOCAL = "unique local address (RFC 4193)"
    UNSPECIFIED = "unspecified address"
    MULTICAST = "multicast address"
    BROADCAST = "broadcast address"
    RESERVED = "reserved address"
    DOCUMENTATION = "documentation or benchmarking address"
    OWN_LISTENER = "the gateway's own listener"


# What `private_networks_allowed` lifts; everything else stays refused.
_PRIVATE_CLASSES = frozenset({AddressClass.PRIVATE, AddressClass.CGNAT, AddressClass.UNIQUE_LOCAL})

# Most specific first: the metadata endpoints sit inside ranges with milder classes.
_V4 = [(IPv4Network(net), cls) for net, cls in (
    ("169.254.169.254/32", AddressClass.METADATA),  # AWS, GCP, Azure, OpenStack, ...
    ("100.100.100.200/32", AddressClass.METADATA),  # Alibaba Cloud
    ("192.0.0.192/32", AddressClass.METADATA),  # Oracle Cloud
    ("168.63.129.16/32", AddressClass.METADATA),  # Azure WireServer (a public address)
    ("0.0.0.0/8", AddressClass.UNSPECIFIED),  # "this network": Linux dials 0.0.0.0 as localhost
    ("127.0.0.0/8", AddressClass.LOOPBACK),
    ("10.0.0.0/8", AddressClass.PRIVATE),
    ("172.16.0.0/12", AddressClass.PRIVATE),
    ("192.168.0.0/16", AddressClass.PRIVATE),
    ("100.64.0.0/10", AddressClass.CGNAT),
    ("169.254.0.0/16", AddressClass.LINK_LOCAL),
    ("192.0.0.0/24", AddressClass.RESERVED),  # IETF protocol assignments
    ("192.88.99.0/24", AddressClass.RESERVED),  # the retired 6to4 relay anycast
    ("192.0.2.0/24", AddressClass.DOCUMENTATION),
    ("198.51.100.0/24", AddressClass.DOCUMENTATION),
    ("203.0.113.0/24", AddressClass.DOCUMENTATION),
    ("198.18.0.0/15", AddressClass.DOCUMENTATION),  # benchmarking
    ("224.0.0.0/4", AddressClass.MULTICAST),
    ("255.255.255.255/32", AddressClass.BROADCAST),
    ("240.0.0.0/4", AddressClass.RESERVED),
)]
_V6 = [(IPv6Network(net), cls) for net, cls in (
    ("fd00:ec2::254/128", AddressClass.METADATA),  # AWS, over IPv6
    ("::/128", AddressClass.UNSPECIFIED),
    ("::1/128", AddressClass.LOOPBACK),
    ("fe80::/10", AddressClass.LINK_LOCAL),
    ("fec0::/10", AddressClass.RESERVED),  # the retired site-local range
    ("fc00::/7", AddressClass.UNIQUE_LOCAL),
    ("ff00::/8", AddressClass.MULTICAST),
    ("64:ff9b:1::/48", AddressClass.RESERVED),  # local-use NAT64: a private translator
    ("100::/64", AddressClass.RESERVED),  # discard-only
    ("2001:db8::/32", AddressClass.DOCUMENTATION),
    ("3fff::/20", AddressClass.DOCUMENTATION),
    ("2001:2::/48", AddressClass.DOCUMENTATION),  # benchmarking
)]
_IPV4_MAPPED = IPv6Network("::ffff:0:0/96")
_IPV4_TRANSLATED = IPv6Network("::ffff:0:0:0/96")  # SIIT
_IPV4_COMPATIBLE = IPv6Network("::/96")  # deprecated, still parsed by resolvers
_NAT64 = IPv6Network("64:ff9b::/96")
_6TO4 = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")

# One part of an inet_aton address: hexadecimal, octal (leading 0) or decimal.
_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address `host` denotes when it is an IP literal in any form a resolver accepts; None
    for a host name.

    Besides the usual forms: the inet_aton shorthands SSRF payloads use (`127.1`, `2130706433`,
    `0x7f000001`, `0177.0.0.1`, `0x7f.1`), brackets (`[::1]`) and IPv6 zones (`fe80::1%eth0`).
    A form this misses is still safe: it goes to the resolver, whose answer is checked.
    """
    if host.startswith("[") and host.endswith("]"):
        return _ipv6(host[1:-1])
    if ":" in host:
        return _ipv6(host)
    return _inet_aton(host.removesuffix("."))  # URL parsers take `127.0.0.1.` as an address


def _ipv6(text: str) -> IPv6Address | None:
    try:
        return IPv6Address(text)
    except ValueError:
        return None


def _inet_aton(text: str) -> IPv4Address | None:
    """glibc's inet_aton, minus its habit of ignoring whatever follows a space."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_PART.fullmatch(p) for p in parts):
        return None
    values = [int(p[2:] or "0", 16) if p[:2] in ("0x", "0X") else int(p, 8 if p[0] == "0" else 10)
              for p in parts]
    *leading, last = values
    if any(v > 0xFF for v in leading) or last >= 1 << (8 * (5 - len(parts))):
        return None
    number = last
    for i, v in enumerate(leading):
        number |= v << (24 - 8 * i)
    return IPv4Address(number)


def refusal_reason(ip: IPAddress) -> AddressClass | None:
    """Why `ip` must not be dialled, or None when it may be."""
    if isinstance(ip, IPv4Address):
        return _classify(ip, _V4)
    ip = IPv6Address(int(ip))  # the zone does not change where packets go
    if embedded := _embedded_ipv4(ip):
        return next(filter(None, map(refusal_reason, embedded)), None)
    return _classify(ip, _V6)


def _classify(ip: IPAddress, table: Sequence[tuple[IPv4Network | IPv6Network, AddressClass]]
              ) -> AddressClass | None:
    return next((cls for net, cls in table if ip in net), None)


def _embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address delivers to (Teredo: the server and the client)."""
    low32 = IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _IPV4_MAPPED or ip in _IPV4_TRANSLATED or ip in _NAT64:
        return (low32,)
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # `::` and `::1` are what they say
        return (low32,)
    if ip in _6TO4:
        return (IPv4Address((int(ip) >> 80) & 0xFFFFFFFF),)
    if ip in _TEREDO:
        server, client = ip.teredo  # type: ignore[misc]  # never None inside 2001::/32
        return (server, client)
    return ()


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome of resolving one target: connect to `address`, or refuse with `refused`."""

    address: tuple[str, int] | None  # the checked address to dial; None when refused
    refused: str | None  # e.g. "loopback address: `127.0.0.1` (`localhost` resolves to ...)"
    addresses: tuple[str, ...]  # everything the name resolved to, for the log
    pinned: bool  # the operator's --connect-to chose the address


class AddressGuard:
    """Resolves targets once and checks every address before the gateway dials it."""

    def __init__(
        self,
        *,
        private_networks_allowed: bool,
        pinned: dict[tuple[str, int], tuple[str, int]],
        own_listeners: list[tuple[str, int]],
        resolver: Resolver | None = None,
    ) -> None:
        """`pinned`: --connect-to, (host, port) -> (IP address, port); port 0 pins every port.
        `own_listeners`: the proxy's and admin API's (host, port); `0.0.0.0`, `::` or a host name
        there stands for every local address on that port."""
        self.private_networks_allowed = private_networks_allowed  # follows policy reloads
        self._pinned = {(normalise_host(host), port): (_pinned_address(address), to_port)
                        for (host, port), (address, to_port) in pinned.items()}
        self._pinned_targets = frozenset(self._pinned.values())
        self._listeners = [(parse_ip_literal(host), port) for host, port in own_listeners]
        self._resolver = resolver or _getaddrinfo

    async def resolve(self, host: str, port: int) -> Resolution:
        """Resolve once and check every address; any refused address refuses them all (a name
        that answers both public and private addresses is a rebinding setup)."""
        name = normalise_host(host)
        target = self._pinned.get((name, port)) or self._pinned.get((name, 0))
        if target is not None:
            refused = self._refusal(target[0], target[1], trusted=True)
            return Resolution(None if refused else target, refused, (target[0],), True)
        literal = parse_ip_literal(name)
        if literal is not None:
            addresses: tuple[str, ...] = (str(literal),)
            context = f" (written `{host}`)" if str(literal) != name else ""
        else:
            try:
                addresses = tuple(dict.fromkeys(await self._resolver(name, port)))
            except (OSError, UnicodeError) as e:  # gaierror; IDNA failures raise UnicodeError
                return Resolution(None, f"cannot resolve `{name}`: {e}", (), False)
            if not addresses:
                return Resolution(None, f"`{name}` resolves to no address", (), False)
            context = f" (`{name}` resolves to {', '.join(addresses)})"
        for address in addresses:
            # Not trusted even when it equals a pinned target: a pin trusts the pinned names only.
            if refused := self._refusal(address, port, trusted=False):
                return Resolution(None, refused + context, addresses, False)
        return Resolution((addresses[0], port), None, addresses, False)

    def check_dial(self, host: str, port: int) -> str | None:
        """The last check before connecting to an already-resolved address: why not, or None.
        A pinned target passes (`resolve` gave it out only for the names pinned to it)."""
        return self._refusal(host, port, trusted=(host, port) in self._pinned_targets)

    def _refusal(self, host: str, port: int, *, trusted: bool) -> str | None:
        ip = parse_ip_literal(host)
        if ip is None:
            return f"`{host}` is not an IP address: resolve it first"
        if self._is_own_listener(ip, port):
            return f"{AddressClass.OWN_LISTENER}: `{host}` port {port}"
        if trusted:
            return None
        reason = refusal_reason(ip)
        if reason is None or (self.private_networks_allowed and reason in _PRIVATE_CLASSES):
            return None
        return f"{reason}: `{ip}`"

    def _is_own_listener(self, ip: IPAddress, port: int) -> bool:
        ip = _unmapped(ip)
        for listener, listener_port in self._listeners:
            if port != listener_port:
                continue
            if ip.is_unspecified:  # dialling 0.0.0.0 or :: reaches this host
                return True
            if listener is None or listener.is_unspecified:
                if _is_local(ip):
                    return True
            elif _unmapped(listener) == ip:
                return True
        return False


def _pinned_address(address: str) -> str:
    ip = parse_ip_literal(address)
    if ip is None:
        raise ValueError(f"--connect-to target `{address}` is not an IP address")
    return str(ip)


def _unmapped(ip: IPAddress) -> IPAddress:
    if isinstance(ip, IPv6Address):
        return ip.ipv4_mapped or IPv6Address(int(ip))
    return ip


def _is_local(ip: IPAddress) -> bool:
    """Whether `ip` is one of this host's addresses: the kernel lets us bind only to those."""
    if ip.is_loopback:
        return True
    family = socket.AF_INET6 if isinstance(ip, IPv6Address) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError as e:
            return e.errno != errno.EADDRNOTAVAIL  # any other failure: assume local, refuse
    return True


async def _getaddrinfo(host: str, port: int) -> list[str]:
    # The loop's class method, not the instance attribute: the gateway replaces the latter with
    # its checked resolver (addons/egress.py), which itself asks this guard.
    loop = asyncio.get_running_loop()
    infos = await type(loop).getaddrinfo(loop, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]
