"""A real gateway (mitmproxy and admin API) running in a thread of the test process.

Used where a test must reach inside a stage, e.g. to inject a fault into its collaborator;
everything else about the gateway (ports, clients, upstream) is as real as in production.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from addons.runtime import Gateway
from gateway.services import Settings


class InProcessGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.gateway: Gateway | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> InProcessGateway:
        def main() -> None:
            async def run() -> None:
                self.gateway = Gateway(self.settings)
                await self.gateway.run()
            try:
                asyncio.run(run())
            except BaseException as e:  # surfaced by start() / stop()
                self._failure = e

        self._thread = threading.Thread(target=main, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._failure is not None:
                raise RuntimeError("the gateway failed to start") from self._failure
            if _listening(self.settings.listen) and _listening(self.settings.admin):
                return self
            time.sleep(0.05)
        raise RuntimeError("the gateway did not start")

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.shutdown()
        if self._thread is not None:
            self._thread.join(10)


def _listening(address: tuple[str, int]) -> bool:
    with socket.socket() as s:
        return s.connect_ex(address) == 0
