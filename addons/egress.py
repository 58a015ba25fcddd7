"""Stage 3, egress: may the call leave at all, and to which address exactly?

By name: the policy's host allowlist, checked at CONNECT (before any TLS) and on every request.
By address: every name the gateway dials is resolved by `AddressGuard`, which checks every
address it resolves to and returns only a checked one. The gateway's event loop resolves through
it (`loop.getaddrinfo` is replaced when the proxy starts), so no connection mitmproxy opens can
reach an address that was not checked, and `--connect-to` pins work as in curl. The request hook
resolves first, to answer a refused call with a clear 403; the dial reuses that resolution
(no second lookup for DNS rebinding to exploit). CONNECT target, TLS SNI and Host header must
name the same host. Traffic that cannot be inspected (raw TCP, UDP, upgrades) is refused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from mitmproxy import http, tcp, udp
from mitmproxy.proxy import server_hooks

from addons import meta
from addons.connections import cut
from addons.guard import answered, fail_closed, refuse
from gateway.egress import AddressGuard, Resolution, parse_ip_literal
from gateway.hostnames import normalise_host
from gateway.policy_holder import PolicyHolder
from gateway.refusals import denied

log = logging.getLogger("gatehouse.egress")

RESOLUTION_REUSE_SECONDS = 5.0  # a request's checked resolution serves the dial right after it
MAX_REMEMBERED = 4096


class Egress:
    def __init__(self, policy: PolicyHolder, guard: AddressGuard) -> None:
        self._policy = policy
        self._guard = guard
        self._recent: dict[tuple[str, int], tuple[Resolution, float]] = {}

    def running(self) -> None:
        asyncio.get_running_loop().getaddrinfo = self.dial_resolve  # type: ignore[method-assign]

    @fail_closed("egress")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        host, policy = normalise_host(flow.request.host), self._policy.current
        # a policy in shadow mode records what it would refuse instead (per request, by decide)
        if not policy.shadow_mode and not policy.egress_allows(host, flow.request.port):
            refuse(flow, denied(f"host `{host}:{flow.request.port}` is not in the egress "
                                "allowlist", "egress"), "egress")

    @fail_closed("egress")
    async def request(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        host, port = normalise_host(flow.request.host), flow.request.port
        if problem := _mismatch(flow, host, port) or _upgrade(flow):
            refuse(flow, denied(problem, "egress"), "egress")
            return
        resolution = await self._guard.resolve(host, port)
        if resolution.refused or resolution.address is None:
            refuse(flow, denied(resolution.refused or f"`{host}` did not resolve", "egress"),
                   "egress")
            return
        flow.metadata[meta.DIALLED] = f"{resolution.address[0]}:{resolution.address[1]}"
        if len(self._recent) >= MAX_REMEMBERED:
            self._recent.clear()
        self._recent[(host, port)] = (resolution, time.monotonic())

    async def dial_resolve(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                           proto: int = 0, flags: int = 0) -> list[tuple[Any, ...]]:
        """`loop.getaddrinfo` for every connection the gateway opens: checked addresses only.
        Any failure is an OSError, which mitmproxy turns into a failed connection."""
        name = normalise_host(host.decode() if isinstance(host, bytes) else str(host))
        port = int(port or 0)
        remembered = self._recent.pop((name, port), None)
        try:
            if remembered and time.monotonic() - remembered[1] < RESOLUTION_REUSE_SECONDS:
                resolution = remembered[0]
            else:
                resolution = await self._guard.resolve(name, port)
        except Exception as e:
            log.exception("egress check before dialling %s failed", name)
            raise socket.gaierror(socket.EAI_FAIL, f"gatehouse egress: internal error: {e}"
                                  ) from e
        if resolution.refused or resolution.address is None:
            log.warning("refused to dial %s:%s: %s", name, port, resolution.refused)
            raise socket.gaierror(socket.EAI_NONAME, f"gatehouse egress: {resolution.refused}")
        address, dial_port = resolution.address
        if ":" in address:
            return [(socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                     (address, dial_port, 0, 0))]
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "",
                 (address, dial_port))]

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        """IP literals are dialled without a lookup, so they are checked here instead."""
        try:
            host, port = data.server.address
            if parse_ip_literal(host) is not None and (problem := self._guard.check_dial(
                    host, port)):
                data.server.error = f"gatehouse egress: {problem}"
        except Exception as e:  # fail closed: no dial without a completed check
            log.exception("egress check before connecting failed")
            data.server.error = f"gatehouse egress: internal error: {e}"

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        """Unreachable while `rawtcp` is off (runtime.py); should a relay start anyway, cut it."""
        log.warning("cut raw TCP from %s: only HTTP(S) can be inspected",
                    flow.client_conn.peername)
        cut(flow)

    def udp_start(self, flow: udp.UDPFlow) -> None:
        log.warning("cut UDP from %s: only HTTP(S) can be inspected", flow.client_conn.peername)
        cut(flow)


def _mismatch(flow: http.HTTPFlow, host: str, port: int) -> str | None:
    """CONNECT target (or absolute URL), SNI and Host header must all name one host."""
    sni = flow.client_conn.sni
    if sni is not None and normalise_host(sni) != host:
        return f"TLS SNI `{sni}` does not match the CONNECT target `{host}`"
    header = flow.request.host_header
    if header is None:
        return None
    if header.startswith("["):  # an IPv6 literal: [::1] or [::1]:8080
        header_host, _, rest = header[1:].partition("]")
        header_port = rest.removeprefix(":")
    else:
        header_host, _, header_port = header.partition(":")
    if normalise_host(header_host) != host:
        return f"Host header `{header}` does not match the target `{host}`"
    if header_port and header_port != str(port):
        return f"Host header `{header}` does not match the target port {port}"
    return None


def _upgrade(flow: http.HTTPFlow) -> str | None:
    upgrade = flow.request.headers.get("upgrade")
    if upgrade is None:
        return None
    return f"protocol upgrade to `{upgrade}` cannot be inspected and is refused"
