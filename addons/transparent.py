"""Transparent mode: the call is decided and dialled by the name it carries.

After an iptables REDIRECT, mitmproxy reads the original destination (SO_ORIGINAL_DST) and makes
it the request's host: an address the agent's own resolver chose. Gatehouse goes by name
instead, as for a proxied call: the TLS SNI, or the Host header of plain HTTP, becomes the target,
so the allowlist, policy and egress stages see the name and egress resolves and checks it itself.
The original destination must agree with that name: the port is the original one (egress holds
the Host header to it), and a name that is an IP literal must be the original address. The
address the agent chose is never dialled.
"""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.net.http.url import parse_authority
from mitmproxy.proxy.mode_specs import TransparentMode

from addons.guard import answered, fail_closed, refuse
from gateway.egress import parse_ip_literal
from gateway.hostnames import normalise_host
from gateway.refusals import denied


class TransparentTarget:
    @fail_closed("egress")
    def request(self, flow: http.HTTPFlow) -> None:
        if answered(flow) or not isinstance(flow.client_conn.proxy_mode, TransparentMode):
            return
        if problem := _retarget(flow):
            refuse(flow, denied(problem, "egress"), "egress")


def _retarget(flow: http.HTTPFlow) -> str | None:
    """Point the request at the name it carries; why not, if it cannot be."""
    original = flow.request.host
    name = flow.client_conn.sni
    if name is None:
        try:
            name = parse_authority(flow.request.host_header or "", check=True)[0]
        except ValueError:
            return (f"a call redirected to the gateway must name its host (TLS SNI or Host "
                    f"header); got `{flow.request.host_header}` for `{original}`")
    literal = parse_ip_literal(name)
    if literal is not None and literal != parse_ip_literal(original):
        return f"the call names `{name}` but was sent to `{original}`"
    flow.request.data.host = normalise_host(name)  # `.host =` would also rewrite the Host header
    return None
