"""Egress through the real gateway: no SSRF, no domain fronting, nothing uninspectable.

The test policy allows every SSRF hostname *by name*, and each URL points at the real
upstream's port on 127.0.0.1: only the check of the dialled address stands between the agent
and a 200, so a broken check shows up as a forwarded request.
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.conftest import Running, start_gateway
from tests.e2e.upstream import Upstream

POLICY = """\
version: 1
policy: egress-test
revision: "1"
default: deny
egress:
  allow: [api.github.com, admin.example, raw.example, "127.0.0.1", "127.1", "2130706433",
          "0x7f000001", "0177.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "169.254.169.254", localhost,
          "10.0.0.1"]
actions:
  - type: http.read
    match: { method: [GET, HEAD] }
rules:
  - id: reads
    when: { action: http.read }
    decision: allow
"""


class RawListener:
    """A plain TCP server that records every byte it receives (and may answer once)."""

    def __init__(self) -> None:
        self.received = b""
        self.answer = b""
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,), daemon=True).start()

    def _client(self, conn: socket.socket) -> None:
        with conn:
            answered = False
            while chunk := conn.recv(65536):
                self.received += chunk
                if self.answer and not answered:
                    conn.sendall(self.answer)
                    answered = True


@pytest.fixture(scope="module")
def raw_server() -> Iterator[RawListener]:
    listener = RawListener()
    yield listener
    listener.server.close()


@pytest.fixture
def raw_listener(raw_server: RawListener) -> RawListener:
    raw_server.received, raw_server.answer = b"", b""
    return raw_server


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, upstream: Upstream,
            raw_server: RawListener) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("egress")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    running = start_gateway(
        tmp, policy, upstream, agents=("agent",),
        extra=lambda gh: ["--connect-to", f"admin.example:80=127.0.0.1:{gh.admin_port}",
                          "--connect-to", f"raw.example=127.0.0.1:{raw_server.port}"])
    yield running
    running.gh.stop()


def raw_get(gateway: Running, url: str) -> tuple[int, dict[str, object]]:
    """Send the request line exactly as written (clients normalise some SSRF forms away)."""
    auth = base64.b64encode(f"agent:{gateway.agents['agent']}".encode()).decode()
    with socket.create_connection(("127.0.0.1", gateway.gh.proxy_port), timeout=10) as sock:
        sock.sendall(f"GET {url} HTTP/1.1\r\nHost: {url.split('/')[2]}\r\n"
                     f"Proxy-Authorization: Basic {auth}\r\nConnection: close\r\n\r\n"
                     .encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head[9:12]), json.loads(body) if body.startswith(b"{") else {}


def get(gateway: Running, url: str) -> httpx.Response:
    trust = ssl.create_default_context(cafile=gateway.gh.ca_bundle)
    with httpx.Client(proxy=gateway.proxy("agent"), verify=trust, timeout=15) as client:
        return client.get(url)


@pytest.mark.parametrize(("host", "refused_as"), [
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("2130706433", "loopback"),
    ("0x7f000001", "loopback"),
    ("0177.0.0.1", "loopback"),
    ("[::1]", "loopback"),
    ("169.254.169.254", "metadata"),
    ("localhost", "loopback"),  # a hostname that resolves to a private address
    ("10.0.0.1", "private"),
])
def test_private_destinations_are_refused_whatever_the_name(
        gateway: Running, upstream: Upstream, host: str, refused_as: str) -> None:
    before = len(upstream.received)
    status, body = raw_get(gateway, f"http://{host}:{upstream.http_port}/ssrf")
    assert status == 403, body
    error = body["error"]
    assert error["type"] == "denied" and error["rule"] == "egress"
    assert refused_as in error["reason"]
    assert len(upstream.received) == before


@pytest.mark.parametrize("host", ["[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[0:0:0:0:0:0:0:1]"])
def test_ipv6_spellings_of_loopback_are_refused(gateway: Running, upstream: Upstream,
                                                host: str) -> None:
    """Each spelling is allowed by name (it normalises to an allowlist entry), so only the
    check of the dialled address stands between it and the upstream."""
    before = len(upstream.received)
    status, body = raw_get(gateway, f"http://{host}:{upstream.http_port}/ssrf")
    assert status == 403 and body["error"]["type"] == "denied"
    assert "loopback" in body["error"]["reason"]
    assert len(upstream.received) == before


def test_the_gateways_own_admin_api_is_refused_even_when_pinned(gateway: Running) -> None:
    direct = get(gateway, f"http://127.0.0.1:{gateway.gh.admin_port}/v1/halts")
    assert direct.status_code == 403 and "own listener" in direct.json()["error"]["reason"]
    pinned = get(gateway, "http://admin.example/healthz")
    assert pinned.status_code == 403
    assert "own listener" in pinned.json()["error"]["reason"]


def tunnel(gateway: Running, target: str) -> socket.socket:
    """Open a CONNECT tunnel through the gateway with the agent's credentials."""
    sock = socket.create_connection(("127.0.0.1", gateway.gh.proxy_port), timeout=10)
    auth = base64.b64encode(f"agent:{gateway.agents['agent']}".encode()).decode()
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
                 f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    return sock


def https_get(gateway: Running, connect: str, sni: str, host_header: str) -> bytes:
    sock = tunnel(gateway, connect)
    context = ssl.create_default_context(cafile=gateway.gh.ca_bundle)
    with context.wrap_socket(sock, server_hostname=sni) as tls:
        tls.sendall(f"GET /front HTTP/1.1\r\nHost: {host_header}\r\nConnection: close\r\n\r\n"
                    .encode())
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_matching_connect_sni_and_host_passes(gateway: Running) -> None:
    answer = https_get(gateway, "api.github.com:443", "api.github.com", "api.github.com")
    assert answer.startswith(b"HTTP/1.1 200")


@pytest.mark.parametrize(("sni", "host_header", "named"), [
    ("evil.example", "api.github.com", b"SNI"),
    ("api.github.com", "evil.example", b"Host header"),
    ("api.github.com", "api.github.com:8443", b"port"),
])
def test_connect_target_sni_and_host_must_agree(gateway: Running, upstream: Upstream, sni: str,
                                                host_header: str, named: bytes) -> None:
    before = len(upstream.received)
    answer = https_get(gateway, "api.github.com:443", sni, host_header)
    assert answer.startswith(b"HTTP/1.1 403")
    assert named in answer
    assert len(upstream.received) == before


def test_raw_tcp_inside_a_tunnel_never_reaches_the_upstream(raw_listener: RawListener,
                                                             gateway: Running) -> None:
    sock = tunnel(gateway, "raw.example:22")
    sock.sendall(b"SSH-2.0-OpenSSH_9.0 not TLS and not HTTP\r\n\r\n")
    answer = sock.recv(4096)
    sock.close()
    assert not answer or answer.startswith(b"HTTP/1.1 400")
    time.sleep(0.2)
    assert raw_listener.received == b""


def test_an_upstream_switching_protocols_gets_no_raw_pipe(raw_listener: RawListener,
                                                          gateway: Running) -> None:
    """An allowed upstream answers 101 to a plain GET: the agent must not get a raw pipe."""
    raw_listener.answer = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n"
                           b"Connection: upgrade\r\n\r\n")
    auth = base64.b64encode(f"agent:{gateway.agents['agent']}".encode()).decode()
    with socket.create_connection(("127.0.0.1", gateway.gh.proxy_port), timeout=10) as sock:
        sock.sendall("GET http://raw.example:22/upgrade HTTP/1.1\r\nHost: raw.example:22\r\n"
                     f"Proxy-Authorization: Basic {auth}\r\n\r\n".encode())
        sock.recv(4096)
        try:
            sock.sendall(b"POST /v1/refunds HTTP/1.1\r\nContent-Length: 14\r\n\r\n"
                         b"amount=9999999")
            time.sleep(0.3)
        except OSError:
            pass  # the gateway already closed the connection
    assert b"amount=9999999" not in raw_listener.received


def test_a_protocol_upgrade_is_refused(gateway: Running, upstream: Upstream) -> None:
    trust = ssl.create_default_context(cafile=gateway.gh.ca_bundle)
    with httpx.Client(proxy=gateway.proxy("agent"), verify=trust, timeout=15) as client:
        response = client.get("https://api.github.com/socket", headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert response.status_code == 403
    assert "upgrade" in response.json()["error"]["reason"]
    assert upstream.requests_to("/socket") == []

