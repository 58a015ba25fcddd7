"""`serve`: one process, one event loop: the mitmproxy proxy and the aiohttp admin API.

mitmproxy's default addon set carries features a gateway must not have (replay, onboarding,
scripting, header rewriting); only the core proxy machinery is loaded, then our pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

from aiohttp import web
from mitmproxy import options
from mitmproxy.addons import core, disable_h2c, errorcheck, next_layer, proxyserver, tlsconfig
from mitmproxy.master import Master

from addons import pipeline
from addons.transparent import TransparentTarget
from gateway.admin import create_app
from gateway.policy.decide import dlp_entities
from gateway.scan.analyzer import get_analyzer
from gateway.scan.settings import request_settings, settings_for
from gateway.services import Services, Settings, open_services

log = logging.getLogger("gatehouse")

CA_CERT = "mitmproxy-ca-cert.pem"  # written by mitmproxy into the state directory
CA_BUNDLE = "ca-bundle.pem"  # the system roots plus the gateway CA, for agents' trust stores
SYSTEM_ROOTS = Path("/etc/ssl/certs/ca-certificates.crt")
REQUEST_BODY_LIMIT = "32m"  # larger requests are refused by mitmproxy, never streamed unseen


def build_master(services: Services) -> Master:
    settings = services.settings
    opts = options.Options()
    master = Master(opts)
    master.addons.add(core.Core(), disable_h2c.DisableH2C(), proxyserver.Proxyserver(),
                      next_layer.NextLayer(), tlsconfig.TlsConfig(),
                      errorcheck.ErrorCheck(repeat_errors_on_stderr=True))
    # transparent connections carry a destination address; the pipeline needs the name
    master.addons.add(TransparentTarget(), *pipeline(services))
    opts.update(
        confdir=str(settings.state_dir),
        listen_host=settings.listen[0],
        listen_port=settings.listen[1],
        mode=[settings.mode],
        connection_strategy="lazy",  # nothing reaches an upstream before the call is decided
        http3=False,
        rawtcp=False,  # bytes that are not HTTP are answered 400, never relayed unseen
        websocket=False,  # an upgrade (or an upstream's 101) closes the connection
        body_size_limit=REQUEST_BODY_LIMIT,
        ssl_verify_upstream_trusted_ca=str(settings.upstream_ca) if settings.upstream_ca
        else None,
    )
    return master


def write_ca_bundle(state_dir: Path) -> Path:
    """System roots + the gateway CA: trusted by agents whose traffic may also bypass us."""
    ca = (state_dir / CA_CERT).read_bytes()
    roots = SYSTEM_ROOTS.read_bytes() if SYSTEM_ROOTS.exists() else b""
    bundle = state_dir / CA_BUNDLE
    bundle.write_bytes(roots.rstrip() + b"\n" + ca)
    return bundle


async def housekeeping(services: Services) -> None:
    """Once a second: reload the policy if its file changed; escalate, announce and expire
    undecided held calls."""
    while True:
        await asyncio.sleep(services.settings.policy_watch_seconds)
        try:
            if services.policy.changed_on_disk():
                await services.policy.reload(actor="file-watch")
        except Exception:
            log.exception("policy watch failed; the running snapshot stays in place")
        try:
            await services.approvals.sweep()
        except Exception:
            log.exception("escalating or expiring held calls failed; will try again")


def start_scanning(services: Services) -> None:
    """Start the scanning workers now when the policy scans anything, so the first call does
    not wait for Presidio to load; say which entity types are covered."""
    policy = services.policy.current
    warm = [settings_for(policy.model.responses, "")]
    if wanted := dlp_entities(policy):
        warm.append(request_settings(policy.model.responses, wanted))
    ready = [s for s in warm if s is not None]
    if ready:
        services.scanner.start(ready)
        for settings in ready:
            log.info("scanning (%s tier) for: %s", settings.tier, ", ".join(settings.detect))
        # event streams are scanned in this process: load its analyzer aside, not on first
        # use, and after the workers so start-up does not fight them for the cores
        loop = asyncio.get_running_loop()
        services.scanner.when_ready(
            lambda: loop.run_in_executor(None, get_analyzer, ready[0].tier))


class Gateway:
    """A running gateway: proxy, admin API and policy watch on the current event loop."""

    def __init__(self, settings: Settings) -> None:
        self.services = open_services(settings)
        self.master = build_master(self.services)
        self._admin = web.AppRunner(create_app(self.services), access_log=None)
        self._watcher: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Serve until `shutdown()`; resources are released on the way out."""
        settings = self.services.settings
        try:
            await self._admin.setup()
            await web.TCPSite(self._admin, settings.admin[0], settings.admin[1]).start()
            write_ca_bundle(settings.state_dir)
            self.services.notifier.start()
            await self.services.halts.announce_start()
            start_scanning(self.services)
            self._watcher = asyncio.create_task(housekeeping(self.services))
            log.info("gatehouse proxy on %s:%d, admin API on http://%s:%d, policy %s",
                     *settings.listen, *settings.admin,
                     self.services.policy.current.snapshot_id)
            await self.master.run()
        finally:
            if self._watcher is not None:
                self._watcher.cancel()
            await self.services.notifier.stop()
            await self._admin.cleanup()
            self.services.close()

    def shutdown(self) -> None:
        """Stop serving; safe to call from any thread."""
        self.master.shutdown()


async def serve(settings: Settings) -> None:
    """Run until SIGINT or SIGTERM."""
    gateway = Gateway(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, gateway.shutdown)
    await gateway.run()
