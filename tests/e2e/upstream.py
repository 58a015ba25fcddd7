"""A real upstream API on 127.0.0.1: plain HTTP and HTTPS (certificates from a trustme CA).

It answers every request with a JSON echo of what arrived, so a test can see exactly what the
gateway forwarded (and that credentials did not leave), and counts the requests it received.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import trustme
from aiohttp import web

from tests.e2e.canned import canned

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UPSTREAM_NAMES = [
    "api.github.com", "api.stripe.com", "hooks.slack.com", "slack.com", "api.sendgrid.com",
    "tools.acme.internal", "api.openai.com", "docs.acme.example", "unlisted.example",
    "localhost", "127.0.0.1",
]


RECEIVED = web.AppKey("received", list)


@dataclass
class Upstream:
    http_port: int
    https_port: int
    ca_file: Path
    received: list[dict[str, object]] = field(default_factory=list)

    def requests_to(self, path: str) -> list[dict[str, object]]:
        return [r for r in self.received if r["path"] == path]


async def _echo(request: web.Request) -> web.Response:
    received = request.app[RECEIVED]
    body = await request.read()
    seen = {
        "method": request.method,
        "path": request.path,
        "query": request.query_string,
        "host": request.host,
        "headers": dict(request.headers),
        "body": body.decode("utf-8", "replace"),
        "tls": request.secure,
    }
    received.append(seen)
    if request.path == "/slow":
        await asyncio.sleep(float(request.query.get("seconds", "5")))
    return web.json_response(seen)


async def _ticker(request: web.Request) -> web.StreamResponse:
    """An event stream that stays open: `count` events `interval` seconds apart (an LLM
    streaming its answer, an MCP server pushing progress)."""
    request.app[RECEIVED].append({"method": request.method, "path": request.path,
                                  "query": request.query_string, "host": request.host})
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})
    await response.prepare(request)
    for i in range(int(request.query.get("count", "50"))):
        try:
            await response.write(f"data: tick {i}\n\n".encode())
        except ConnectionError:
            break
        await asyncio.sleep(float(request.query.get("interval", "0.1")))
    await response.write_eof()
    return response


def _counted(handler: Handler) -> Handler:
    """Count a canned answer's requests like the echo's, so tests see what reached upstream."""
    async def count(request: web.Request) -> web.StreamResponse:
        request.app[RECEIVED].append({"method": request.method, "path": request.path,
                                      "query": request.query_string, "host": request.host})
        return await handler(request)
    return count


def start_upstream(tmp: Path) -> tuple[Upstream, threading.Event]:
    """Serve on free ports in a daemon thread; set the returned event to stop."""
    ca = trustme.CA()
    cert = ca.issue_cert(*UPSTREAM_NAMES)
    ca_file = tmp / "upstream-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)

    ready = threading.Event()
    stop = threading.Event()
    holder: dict[str, Upstream] = {}

    async def main() -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        received: list[dict[str, object]] = []
        app[RECEIVED] = received
        app.router.add_route("*", "/canned/{name}", _counted(canned))
        app.router.add_get("/ticker", _ticker)
        app.router.add_route("*", "/{tail:.*}", _echo)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        plain = web.TCPSite(runner, "127.0.0.1", 0)
        secure = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await plain.start()
        await secure.start()
        holder["upstream"] = Upstream(_port(plain), _port(secure), ca_file, received)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    threading.Thread(target=asyncio.run, args=(main(),), daemon=True).start()
    if not ready.wait(10):
        raise RuntimeError("the upstream test server did not start")
    return holder["upstream"], stop


def _port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server here; the port was chosen by the OS
    assert server is not None
    return server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
