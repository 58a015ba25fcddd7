"""The one spelling of a host that Gatehouse compares everywhere: policy, halts, egress, audit.

Several spellings of one host (`API.Example.com.`, `[::1]` and `0:0::1`, a Unicode name and its
punycode) must never be different hosts to one stage and the same host to another: a halt or a
rule written one way would silently miss calls written the other way.
"""

from __future__ import annotations

import ipaddress


def normalise_host(host: str) -> str:
    """No brackets or root dot, lower case, IDNA (punycode), IPv6 in compressed form."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host = host.rstrip(".").lower()
    if ":" in host:
        try:
            return str(ipaddress.IPv6Address(host))
        except ValueError:
            return host
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host
