"""Transparent mode for real: an agent in its own network namespace, whose outbound 80/443 the
host redirects to the gateway with iptables, runs an unmodified curl that knows nothing of any
proxy (it only trusts the gateway's CA). Its calls are identified by source address and decided
by policy like proxied ones.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import missing
from tests.e2e.conftest import ACME, Running, start_gateway
from tests.e2e.upstream import Upstream

HOST_SIDE, AGENT, STRANGER = "10.200.0.1", "10.200.0.2", "10.200.0.3"
CAUGHT = "203.0.113.10"  # where the agent's resolver says the API is; the redirect catches it


def sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@dataclass
class AgentNet:
    """The agent's namespace and the host-side interface its traffic arrives on."""

    namespace: str
    veth: str


@pytest.fixture(scope="module")
def agent_net() -> Iterator[AgentNet]:
    """A namespace with a veth pair to the host, routed through it; everything is undone in the
    `finally`, however far the set-up got."""
    for tool in ("ip", "iptables", "curl"):
        if shutil.which(tool) is None:
            missing(f"`{tool}` is not installed")
    if os.geteuid() != 0:
        missing("network namespaces and iptables need root (CAP_NET_ADMIN)")
    tag = f"gh{os.getpid() % 100000}"
    net = AgentNet(f"{tag}-agent", f"{tag}h")
    undo: list[tuple[str, ...]] = []
    try:
        made = sh("ip", "netns", "add", net.namespace)
        if made.returncode != 0:
            missing(f"cannot create a network namespace: {made.stderr.strip()}")
        undo.append(("ip", "netns", "del", net.namespace))  # takes the veth pair with it
        inside = ("ip", "netns", "exec", net.namespace)
        for step in [
            ("ip", "link", "add", net.veth, "type", "veth", "peer", "name", f"{tag}a"),
            ("ip", "link", "set", f"{tag}a", "netns", net.namespace),
            ("ip", "addr", "add", f"{HOST_SIDE}/24", "dev", net.veth),
            ("ip", "link", "set", net.veth, "up"),
            (*inside, "ip", "addr", "add", f"{AGENT}/24", "dev", f"{tag}a"),
            (*inside, "ip", "addr", "add", f"{STRANGER}/24", "dev", f"{tag}a"),
            (*inside, "ip", "link", "set", f"{tag}a", "up"),
            (*inside, "ip", "link", "set", "lo", "up"),
            (*inside, "ip", "route", "add", "default", "via", HOST_SIDE),
        ]:
            done = sh(*step)
            if done.returncode != 0:
                missing(f"`{' '.join(step)}` failed: {done.stderr.strip()}")
        yield net
    finally:
        for step in reversed(undo):
            sh(*step)


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
            agent_net: AgentNet) -> Iterator[Running]:
    """The reference policy with `support-bot` at the agent's address, and the gateway in
    transparent mode receiving the namespace's 80/443."""
    tmp = tmp_path_factory.mktemp("transparent")
    text = ACME.read_text()
    assert "  support-bot: { tenant: acme }" in text
    (tmp / "acme.yaml").write_text(text.replace(
        "  support-bot: { tenant: acme }",
        f"  support-bot: {{ tenant: acme, addresses: [{AGENT}/32] }}", 1))
    running = start_gateway(tmp, tmp / "acme.yaml", upstream, extra=lambda gh: [
        "--mode", "transparent", "--listen", f"0.0.0.0:{gh.proxy_port}"])
    redirect = ("-t", "nat", "PREROUTING", "-i", agent_net.veth, "-p", "tcp", "-m", "multiport",
                "--dports", "80,443", "-j", "REDIRECT", "--to-ports", str(running.gh.proxy_port))
    try:
        added = sh("iptables", *redirect[:2], "-A", *redirect[2:])
        if added.returncode != 0:
            missing(f"cannot add the iptables redirect: {added.stderr.strip()}")
        yield running
    finally:
        sh("iptables", *redirect[:2], "-D", *redirect[2:])
        running.gh.stop()


def agent_curl(net: AgentNet, running: Running, url: str, *args: str,
               source: str = AGENT) -> tuple[int, dict[str, str], str]:
    """curl inside the agent's namespace: no proxy flags, the gateway CA trusted, the API's
    name resolved to an address the redirect catches."""
    scheme, _, rest = url.partition("://")
    host = rest.split("/")[0]
    port = "443" if scheme == "https" else "80"
    done = sh("ip", "netns", "exec", net.namespace, "env", "-u", "http_proxy", "-u",
              "https_proxy", "-u", "HTTPS_PROXY", "-u", "ALL_PROXY",
              "curl", "-sS", "-i", "--max-time", "20", "--noproxy", "*", "--interface", source,
              "--cacert", str(running.gh.ca_bundle), "--resolve", f"{host}:{port}:{CAUGHT}",
              *args, url)
    assert done.returncode == 0, done.stderr
    head, _, body = done.stdout.replace("\r\n", "\n").partition("\n\n")
    status_line, *lines = head.splitlines()
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_an_allowed_call_passes_as_the_mapped_agent(sidecar: Running, agent_net: AgentNet,
                                                    upstream: Upstream, scheme: str) -> None:
    path = f"/transparent/{uuid.uuid4().hex}"
    status, headers, _ = agent_curl(agent_net, sidecar, f"{scheme}://docs.acme.example{path}")
    assert status == 200 and headers["x-gatehouse-decision"] == "allow"
    [seen] = upstream.requests_to(path)
    assert seen["tls"] is (scheme == "https")
    record = sidecar.wait_for_audit("call.decided", request_id=headers["x-gatehouse-request-id"])
    assert record["agent"] == "support-bot" and record["tenant"] == "acme"
    assert record["dialled"] == (  # the pinned upstream, not the address the agent chose
        f"127.0.0.1:{upstream.https_port if scheme == 'https' else upstream.http_port}")


def test_a_denied_call_gets_the_gateways_403(sidecar: Running, agent_net: AgentNet,
                                             upstream: Upstream) -> None:
    before = len(upstream.received)
    status, headers, body = agent_curl(
        agent_net, sidecar, "https://docs.acme.example/pages", "-X", "POST",
        "-H", "Content-Type: application/json", "-d", '{"title": "x"}')
    assert status == 403 and headers["x-gatehouse-decision"] == "deny"
    assert '"type":"denied"' in body and "no rule matched" in body
    assert len(upstream.received) == before


def test_an_unmapped_address_is_refused(sidecar: Running, agent_net: AgentNet,
                                        upstream: Upstream) -> None:
    before = len(upstream.received)
    status, _, body = agent_curl(agent_net, sidecar, "https://docs.acme.example/who",
                                 source=STRANGER)
    assert status == 407
    assert '"type":"identity_required"' in body and f"`{STRANGER}`" in body
    assert len(upstream.received) == before


@pytest.mark.parametrize(("url", "header", "reason"), [
    ("https://docs.acme.example/x", "Host: api.github.com",
     "Host header `api.github.com` does not match the target `docs.acme.example`"),
    ("http://docs.acme.example/x", "Host: 169.254.169.254",
     f"the call names `169.254.169.254` but was sent to `{CAUGHT}`"),
])
def test_the_name_must_agree_with_the_destination(sidecar: Running, agent_net: AgentNet,
                                                  upstream: Upstream, url: str, header: str,
                                                  reason: str) -> None:
    before = len(upstream.received)
    status, _, body = agent_curl(agent_net, sidecar, url, "-H", header)
    assert status == 403 and reason in body
    assert len(upstream.received) == before
