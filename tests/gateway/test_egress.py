"""The dialled-address check: every SSRF spelling is refused with the right class, names are
resolved once with every address checked, and only the operator's pins are trusted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Coroutine, Sequence
from ipaddress import ip_address
from typing import Any, TypeVar

import pytest

from gateway.egress import (
    AddressClass,
    AddressGuard,
    Resolution,
    Resolver,
    parse_ip_literal,
    refusal_reason,
)
from tests.conftest import missing

C = AddressClass

# Every spelling an SSRF payload uses, and the class it must be refused as.
REFUSED_LITERALS = [
    ("127.0.0.1", C.LOOPBACK),
    ("127.1", C.LOOPBACK),  # inet_aton shorthand: a.d
    ("127.0.1", C.LOOPBACK),  # a.b.d
    ("2130706433", C.LOOPBACK),  # one decimal number
    ("0x7f000001", C.LOOPBACK),  # one hex number
    ("0X7F000001", C.LOOPBACK),
    ("0177.0.0.1", C.LOOPBACK),  # octal
    ("0x7f.1", C.LOOPBACK),
    ("017700000001", C.LOOPBACK),  # one octal number
    ("127.0.0.1.", C.LOOPBACK),  # root dot, as URL parsers accept it
    ("[::1]", C.LOOPBACK),
    ("::1", C.LOOPBACK),
    ("[::ffff:127.0.0.1]", C.LOOPBACK),  # IPv4-mapped
    ("::ffff:7f00:1", C.LOOPBACK),
    ("[::ffff:7f00:1]", C.LOOPBACK),
    ("::ffff:0:7f00:1", C.LOOPBACK),  # IPv4-translated (SIIT)
    ("::127.0.0.1", C.LOOPBACK),  # IPv4-compatible
    ("64:ff9b::7f00:1", C.LOOPBACK),  # NAT64
    ("2002:7f00:1::", C.LOOPBACK),  # 6to4
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", C.LOOPBACK),  # Teredo, client 127.0.0.1
    ("169.254.169.254", C.METADATA),
    ("0xa9fea9fe", C.METADATA),
    ("::ffff:169.254.169.254", C.METADATA),
    ("fd00:ec2::254", C.METADATA),
    ("100.100.100.200", C.METADATA),
    ("192.0.0.192", C.METADATA),
    ("10.0.0.1", C.PRIVATE),
    ("012.0.0.1", C.PRIVATE),  # octal 10
    ("172.16.5.4", C.PRIVATE),
    ("172.31.255.255", C.PRIVATE),
    ("192.168.1.1", C.PRIVATE),
    ("::ffff:10.0.0.1", C.PRIVATE),
    ("64:ff9b::a00:1", C.PRIVATE),
    ("100.64.0.1", C.CGNAT),
    ("100.127.255.254", C.CGNAT),
    ("169.254.1.1", C.LINK_LOCAL),
    ("fe80::1", C.LINK_LOCAL),
    ("fe80::1%eth0", C.LINK_LOCAL),  # with a zone
    ("[fe80::1%25eth0]", C.LINK_LOCAL),  # the zone as URLs write it
    ("fc00::1", C.UNIQUE_LOCAL),
    ("fd12:3456::1", C.UNIQUE_LOCAL),
    ("0.0.0.0", C.UNSPECIFIED),
    ("0", C.UNSPECIFIED),
    ("0.1.2.3", C.UNSPECIFIED),
    ("[::]", C.UNSPECIFIED),
    ("224.0.0.1", C.MULTICAST),
    ("ff02::1", C.MULTICAST),
    ("255.255.255.255", C.BROADCAST),
    ("240.0.0.1", C.RESERVED),
    ("192.0.0.8", C.RESERVED),
    ("fec0::1", C.RESERVED),
    ("192.0.2.1", C.DOCUMENTATION),
    ("198.51.100.7", C.DOCUMENTATION),
    ("203.0.113.9", C.DOCUMENTATION),
    ("198.18.0.1", C.DOCUMENTATION),
    ("2001:db8::1", C.DOCUMENTATION),
]

PUBLIC_LITERALS = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "172.32.0.1",  # just past 172.16.0.0/12
    "100.128.0.1",  # just past the CGNAT range
    "2606:4700::1111",
    "[2606:4700::1111]",
    "::ffff:93.184.216.34",  # a mapped public address is that public address
    "2002:5db8:d822::1",  # 6to4 of 93.184.216.34
    "64:ff9b::5db8:d822",  # NAT64 of 93.184.216.34
]

NOT_LITERALS = [
    "example.com",
    "localhost",
    "127.0.0.1.nip.io",
    "1.2.3.4 x",  # glibc's inet_aton would ignore everything after the space
    "256.1.1.1",
    "1.2.3.256",
    "1.2.65536",
    "4294967296",  # one past 255.255.255.255
    "08.1.1.1",  # 8 is no octal digit
    "1..1",
    "1.2.3.4.5",
    "",
    "[example.com]",
    "::g",
]

PUBLIC = "93.184.216.34"
T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


class StaticDNS:
    """A stand-in for DNS answering `addresses`; it records every question it is asked."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.questions: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.questions.append((host, port))
        return self.addresses


def guard(resolver: Resolver | None = None, *, private: bool = False,
          pinned: dict[tuple[str, int], tuple[str, int]] | None = None,
          listeners: list[tuple[str, int]] | None = None) -> AddressGuard:
    if listeners is None:
        listeners = [("127.0.0.1", 8080), ("127.0.0.1", 8081)]
    return AddressGuard(private_networks_allowed=private, pinned=pinned or {},
                        own_listeners=listeners, resolver=resolver)


def refused_as(resolution: Resolution, cls: AddressClass) -> bool:
    return resolution.address is None and (resolution.refused or "").startswith(f"{cls}: ")


@pytest.mark.parametrize(("host", "cls"), REFUSED_LITERALS)
def test_every_ssrf_spelling_is_refused_with_its_class(host: str, cls: AddressClass) -> None:
    ip = parse_ip_literal(host)
    assert ip is not None
    assert refusal_reason(ip) == cls


@pytest.mark.parametrize(("host", "cls"), REFUSED_LITERALS)
def test_literals_are_checked_without_asking_dns(host: str, cls: AddressClass) -> None:
    dns = StaticDNS(PUBLIC)
    resolution = run(guard(dns).resolve(host, 443))
    assert refused_as(resolution, cls), resolution
    assert dns.questions == []


@pytest.mark.parametrize("host", PUBLIC_LITERALS)
def test_public_addresses_may_be_dialled(host: str) -> None:
    ip = parse_ip_literal(host)
    assert ip is not None
    assert refusal_reason(ip) is None
    resolution = run(guard(StaticDNS()).resolve(host, 443))
    assert resolution == Resolution((str(ip), 443), None, (str(ip),), False)


@pytest.mark.parametrize(("host", "address"), [
    ("127.1", "127.0.0.1"),
    ("0x7f.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("3232235777", "192.168.1.1"),
    ("0xc0.0xa8.0x1.0x1", "192.168.1.1"),
    ("10.1", "10.0.0.1"),
    ("[::ffff:7f00:1]", "::ffff:7f00:1"),
    ("fe80::1%eth0", "fe80::1%eth0"),
])
def test_shorthand_literals_mean_the_address_a_resolver_would_dial(host: str,
                                                                  address: str) -> None:
    assert parse_ip_literal(host) == ip_address(address)


@pytest.mark.parametrize("host", NOT_LITERALS)
def test_host_names_and_malformed_numbers_are_not_literals(host: str) -> None:
    assert parse_ip_literal(host) is None


def test_localhost_through_the_real_resolver_is_refused_as_loopback() -> None:
    resolution = run(guard().resolve("localhost", 80))
    assert refused_as(resolution, C.LOOPBACK), resolution
    assert "127.0.0.1" in resolution.addresses


def test_a_name_resolving_to_public_and_private_addresses_is_refused_whole() -> None:
    resolution = run(guard(StaticDNS(PUBLIC, "10.0.0.7")).resolve("rebind.example", 443))
    assert resolution == Resolution(
        None, "private network address (RFC 1918): `10.0.0.7` "
              "(`rebind.example` resolves to 93.184.216.34, 10.0.0.7)",
        (PUBLIC, "10.0.0.7"), False)


def test_a_name_is_resolved_once_and_the_first_checked_address_is_dialled() -> None:
    dns = StaticDNS("2606:4700::1111", PUBLIC, PUBLIC)
    resolution = run(guard(dns).resolve("API.Example.", 443))
    assert resolution == Resolution(("2606:4700::1111", 443), None,
                                    ("2606:4700::1111", PUBLIC), False)
    assert dns.questions == [("api.example", 443)]


@pytest.mark.parametrize(("resolver", "refused"), [
    (None, "cannot resolve `nx.invalid`: "),  # the real resolver: .invalid never resolves
    (StaticDNS(), "`nx.invalid` resolves to no address"),
])
def test_a_name_that_does_not_resolve_is_refused(resolver: Resolver | None,
                                                  refused: str) -> None:
    resolution = run(guard(resolver).resolve("nx.invalid", 443))
    assert resolution.address is None and resolution.addresses == ()
    assert resolution.refused is not None and resolution.refused.startswith(refused)


def test_a_resolver_failure_is_a_refusal_not_an_exception() -> None:
    async def failing(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    resolution = run(guard(failing).resolve("api.example", 443))
    assert resolution == Resolution(
        None, "cannot resolve `api.example`: [Errno -3] Temporary failure in name resolution",
        (), False)


PINS = {("upstream.test", 443): ("127.0.0.1", 9443), ("any-port.test", 0): ("[::1]", 9000),
        ("admin.test", 443): ("127.0.0.1", 8081)}


@pytest.mark.parametrize(("host", "port", "expected"), [
    ("upstream.test", 443, Resolution(("127.0.0.1", 9443), None, ("127.0.0.1",), True)),
    ("UPSTREAM.test.", 443, Resolution(("127.0.0.1", 9443), None, ("127.0.0.1",), True)),
    ("any-port.test", 8443, Resolution(("::1", 9000), None, ("::1",), True)),
    ("admin.test", 443, Resolution(None, "the gateway's own listener: `127.0.0.1` port 8081",
                                   ("127.0.0.1",), True)),
])
def test_pinned_targets_are_trusted_except_for_the_gateway_itself(
        host: str, port: int, expected: Resolution) -> None:
    dns = StaticDNS(PUBLIC)
    assert run(guard(dns, pinned=PINS).resolve(host, port)) == expected
    assert dns.questions == []


@pytest.mark.parametrize(("host", "port"), [
    ("upstream.test", 80),  # the pin is for port 443 only: DNS, then the private refusal
    ("elsewhere.example", 9443),  # resolves to a pinned address, but a pin trusts names
])
def test_a_pin_trusts_its_name_and_port_not_the_address(host: str, port: int) -> None:
    resolution = run(guard(StaticDNS("127.0.0.1"), pinned=PINS).resolve(host, port))
    assert refused_as(resolution, C.LOOPBACK), resolution


def test_a_pin_must_name_an_ip_address() -> None:
    with pytest.raises(ValueError, match="--connect-to target `internal.example`"):
        guard(pinned={("api.test", 443): ("internal.example", 443)})


def _this_hosts_address() -> str:
    """A non-loopback address of this host (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            missing("this host has no route off loopback")
        return probe.getsockname()[0]


@pytest.mark.parametrize(("listener", "target", "refused"), [
    (("127.0.0.1", 8081), ("127.0.0.1", 8081), True),
    (("127.0.0.1", 8081), ("0.0.0.0", 8081), True),  # 0.0.0.0 is dialled as this host
    (("127.0.0.1", 8081), ("::ffff:127.0.0.1", 8081), True),
    (("127.0.0.1", 8081), ("127.0.0.1", 8082), False),
    (("127.0.0.1", 8081), ("127.0.0.2", 8081), False),  # another address, another socket
    (("0.0.0.0", 8080), ("127.0.0.1", 8080), True),
    (("0.0.0.0", 8080), ("127.0.0.2", 8080), True),
    (("0.0.0.0", 8080), ("this-host", 8080), True),
    (("0.0.0.0", 8080), ("this-host", 8443), False),
    (("::", 8080), ("::1", 8080), True),
    (("::", 8080), ("127.0.0.1", 8080), True),  # a dual-stack socket takes IPv4 too
    (("localhost", 8080), ("this-host", 8080), True),  # a listener name: any local address
    (("[::1]", 8080), ("::1", 8080), True),
])
def test_the_gateways_own_listeners_are_refused_even_when_pinned(
        listener: tuple[str, int], target: tuple[str, int], refused: bool) -> None:
    address = _this_hosts_address() if target[0] == "this-host" else target[0]
    g = guard(pinned={("internal.test", 443): (address, target[1])}, listeners=[listener])
    resolution = run(g.resolve("internal.test", 443))
    assert refused_as(resolution, C.OWN_LISTENER) is refused, resolution
    assert (g.check_dial(address, target[1]) is not None) is refused


@pytest.mark.parametrize(("host", "cls"), [
    ("10.0.0.1", None),
    ("172.16.5.4", None),
    ("192.168.1.1", None),
    ("100.64.0.1", None),
    ("fc00::1", None),
    ("169.254.169.254", C.METADATA),  # never: the cloud's credential endpoint
    ("fd00:ec2::254", C.METADATA),  # inside fc00::/7, still metadata
    ("100.100.100.200", C.METADATA),  # inside CGNAT, still metadata
    ("169.254.1.1", C.LINK_LOCAL),
    ("127.0.0.1", C.LOOPBACK),  # this host is not a private network
    ("0.0.0.0", C.UNSPECIFIED),
])
def test_allowing_private_networks_lifts_only_the_private_classes(
        host: str, cls: AddressClass | None) -> None:
    resolution = run(guard(StaticDNS(host), private=True).resolve("internal.example", 443))
    if cls is None:
        assert resolution.address == (host, 443)
    else:
        assert refused_as(resolution, cls), resolution


def test_allowing_private_networks_still_refuses_the_gateways_own_listener() -> None:
    g = guard(StaticDNS("10.1.2.3"), private=True, listeners=[("10.1.2.3", 8081)])
    resolution = run(g.resolve("internal.example", 8081))
    assert refused_as(resolution, C.OWN_LISTENER), resolution
    assert run(g.resolve("internal.example", 443)).address == ("10.1.2.3", 443)


@pytest.mark.parametrize(("host", "port", "refused"), [
    (PUBLIC, 443, None),
    ("127.0.0.1", 9443, None),  # the pinned target
    ("127.0.0.1", 9444, "loopback address: `127.0.0.1`"),
    ("10.0.0.1", 443, "private network address (RFC 1918): `10.0.0.1`"),
    ("127.0.0.1", 8081, "the gateway's own listener: `127.0.0.1` port 8081"),
    ("api.example", 443, "`api.example` is not an IP address: resolve it first"),
])
def test_the_last_check_before_dialling(host: str, port: int, refused: str | None) -> None:
    assert guard(pinned=PINS).check_dial(host, port) == refused
