"""Stage 1, identify: which agent is calling?

Agents put their credentials in the proxy URL (`http://AGENT:TOKEN@gateway:8080`), which clients
send as `Proxy-Authorization` on every plain-HTTP request and once on CONNECT for HTTPS. The
identity of a CONNECT holds for every request inside that tunnel. The header never leaves the
gateway. When no agent token exists yet, callers without credentials run as `anonymous`.

In transparent mode the agent's traffic is redirected to the gateway and carries no credentials:
the client address names the agent, through the policy's `agents.*.addresses`. An address no
agent claims is refused, never anonymous. Credentials sent anyway are checked as above.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from weakref import WeakKeyDictionary

from mitmproxy import connection, http
from mitmproxy.proxy.mode_specs import TransparentMode

from addons import meta
from addons.guard import answered, fail_closed, refuse
from gateway.policy import Policy
from gateway.policy_holder import PolicyHolder
from gateway.refusals import identity_required
from gateway.store import StateStore

ANONYMOUS = "anonymous"


def parse_basic(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        username, sep, password = b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (username, password) if sep else None


class AddressMap:
    """The client ranges of one policy snapshot (`checks.py` ensures no two agents overlap)."""

    def __init__(self, policy: Policy) -> None:
        self.snapshot_id = policy.snapshot_id
        self._ranges: list[tuple[IPv4Network | IPv6Network, str]] = [
            (ip_network(text), name)
            for name, agent in policy.model.agents.items() for text in agent.addresses]

    def agent_at(self, address: str) -> str | None:
        ip = ip_address(address)
        if ip.version == 6 and ip.ipv4_mapped:  # an IPv4 client on a dual-stack socket
            ip = ip.ipv4_mapped
        return next((name for network, name in self._ranges if ip in network), None)


class Identify:
    def __init__(self, store: StateStore, policy: PolicyHolder) -> None:
        self._store = store
        self._policy = policy
        self._addresses = AddressMap(policy.current)
        # the agent of each client connection, with the header that proved it
        self._known: WeakKeyDictionary[connection.Client, tuple[str, str]] = WeakKeyDictionary()
        # connections that opened a CONNECT tunnel, and the agent that opened it
        self._tunnels: WeakKeyDictionary[connection.Client, str] = WeakKeyDictionary()

    @fail_closed("identify")
    def http_connect(self, flow: http.HTTPFlow) -> None:
        if not answered(flow) and (agent := self._identify(flow)):
            self._tunnels[flow.client_conn] = agent

    @fail_closed("identify")
    def request(self, flow: http.HTTPFlow) -> None:
        if answered(flow):
            return
        tunnel_agent = self._tunnels.get(flow.client_conn)
        if tunnel_agent is None:
            self._identify(flow)
            return
        # inside a tunnel the identity is the CONNECT's; a header in here is not ours to honour
        flow.request.headers.pop("Proxy-Authorization", None)
        self._set_agent(flow, tunnel_agent)

    def _identify(self, flow: http.HTTPFlow) -> str | None:
        header = flow.request.headers.pop("Proxy-Authorization", None)
        known = self._known.get(flow.client_conn)
        if header is not None and known is not None and known[1] == header:
            agent: str | None = known[0]
        else:
            agent, problem = self._check(header, flow.client_conn)
            if agent is None:
                refuse(flow, identity_required(problem), "identify")
                return None
            self._known[flow.client_conn] = (agent, header or "")
        self._set_agent(flow, agent)
        return agent

    def _check(self, header: str | None, client: connection.Client) -> tuple[str | None, str]:
        if header is None and isinstance(client.proxy_mode, TransparentMode):
            return self._by_address(client.peername[0])
        if header is None:
            if self._store.has_agent_tokens():
                return None, "no Proxy-Authorization credentials were sent"
            return ANONYMOUS, ""
        credentials = parse_basic(header)
        if credentials is None:
            return None, "Proxy-Authorization must be Basic AGENT:TOKEN"
        name, token = credentials
        principal = self._store.find_token(token)
        if principal is None or principal.kind != "agent" or principal.name != name:
            return None, f"the token is not valid for agent `{name}`"
        return principal.name, ""

    def _by_address(self, address: str) -> tuple[str | None, str]:
        policy = self._policy.current
        if self._addresses.snapshot_id != policy.snapshot_id:
            self._addresses = AddressMap(policy)
        agent = self._addresses.agent_at(address)
        if agent is None:
            return None, f"the client address `{address}` is not in any agent's `addresses`"
        return agent, ""

    def _set_agent(self, flow: http.HTTPFlow, agent: str) -> None:
        flow.metadata[meta.AGENT] = agent
        flow.metadata[meta.TENANT] = self._policy.current.agent_tenant(agent)
