"""Host patterns for the egress allowlist and for `match.host` / `when.host`.

Smokescreen's rules: a pattern is an exact host or a leading `*.` (any subdomain, never the
domain itself), never a bare `*` or a `*` elsewhere; hosts are written in punycode; an optional
`:port` limits the pattern to that port. Matching is on lower-case names without a trailing dot.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gateway.hostnames import normalise_host

_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")


def parent_domains(host: str) -> Iterator[str]:
    """`a.b.example.com` -> `b.example.com`, `example.com`, `com`: where `*.` patterns sit."""
    dot = host.find(".")
    while dot >= 0:
        host = host[dot + 1 :]
        yield host
        dot = host.find(".")


@dataclass(frozen=True, slots=True)
class HostPattern:
    """`host` exactly, or (wildcard) any name strictly under `host`; any port if `port` is None."""

    host: str
    wildcard: bool = False
    port: int | None = None

    def matches(self, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.wildcard:
            return host.endswith("." + self.host)
        return host == self.host

    def __str__(self) -> str:
        name = f"*.{self.host}" if self.wildcard else self.host
        if ":" in name:
            name = f"[{name}]"
        return name if self.port is None else f"{name}:{self.port}"


def parse_host_pattern(text: str) -> HostPattern:
    """Parse and check one pattern; ValueError carries a message that says how to fix it."""
    name, port = _split_port(text)
    if name.startswith("[") and name.endswith("]"):
        try:
            return HostPattern(str(ipaddress.IPv6Address(name[1:-1])), port=port)
        except ValueError:
            raise ValueError(f"`{text}` is not a valid IPv6 address in brackets") from None
    if not name.isascii():
        raise ValueError(f"non-ASCII host `{text}`; write it in punycode: `{_punycode(text)}`")
    name = normalise_host(name)
    if name == "*":
        raise ValueError(
            "bare `*` would allow every host; list the hosts, or use `*.example.com` "
            "for the subdomains of one domain"
        )
    wildcard = name.startswith("*.")
    if wildcard:
        name = name[2:]
    if "*" in name:
        raise ValueError(
            f"`{text}` has a `*` that is not a leading `*.`; "
            "only patterns like `*.example.com` (any subdomain) are allowed"
        )
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise ValueError(
            f"`{text}` is not a valid host name; use letters, digits and hyphens "
            "between dots, like `api.example.com`"
        )
    if wildcard and len(labels) < 2:
        raise ValueError(
            f"`{text}` would match a whole top-level domain; name the domain, like `*.example.com`"
        )
    return HostPattern(name, wildcard, port)


def _split_port(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        name, _, rest = text.partition("]")
        name += "]"
        if not rest:
            return name, None
        if not rest.startswith(":"):
            raise ValueError(f"`{text}` is not a valid host; write `[address]:port`")
        port_text = rest[1:]
    elif ":" in text:
        name, _, port_text = text.rpartition(":")
    else:
        return text, None
    if not (port_text.isascii() and port_text.isdigit() and 1 <= int(port_text) <= 65535):
        raise ValueError(f"bad port `{port_text}` in `{text}`; use a number from 1 to 65535")
    return name, int(port_text)


def _punycode(text: str) -> str:
    try:
        return text.lower().encode("idna").decode("ascii")
    except UnicodeError:
        return "xn--..."


class HostSet:
    """A set of host patterns, looked up by exact name and by each parent domain (not a scan)."""

    def __init__(self, patterns: Iterable[HostPattern]) -> None:
        self._exact: dict[str, list[HostPattern]] = {}
        self._wild: dict[str, list[HostPattern]] = {}
        for pattern in patterns:
            index = self._wild if pattern.wildcard else self._exact
            index.setdefault(pattern.host, []).append(pattern)

    def _candidates(self, host: str) -> Iterator[HostPattern]:
        yield from self._exact.get(host, ())
        for parent in parent_domains(host):
            yield from self._wild.get(parent, ())

    def allows(self, host: str, port: int) -> bool:
        host = normalise_host(host)
        return any(p.matches(host, port) for p in self._candidates(host))

    def knows(self, host: str) -> bool:
        """Whether some pattern names this host on some port (to explain a port-only refusal)."""
        return any(True for _ in self._candidates(normalise_host(host)))
