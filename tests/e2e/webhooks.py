"""A real webhook receiver on 127.0.0.1, served from a thread: what the gateway's notifications
look like on arrival, and a receiver that refuses each message once to see it retried."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

MESSAGES = web.AppKey("messages", list)
FAIL_FIRST = web.AppKey("fail_first", bool)


class WebhookReceiver:
    def __init__(self, port: int, messages: list[dict[str, object]]) -> None:
        self.port = port
        self.messages = messages  # every POSTed JSON body, refused ones too, in arrival order

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/T000/B000/secret"

    def about(self, pending_id: str, event: str | None = None) -> list[dict[str, object]]:
        return [m for m in self.messages
                if m["gatehouse"]["pending_id"] == pending_id  # type: ignore[index]
                and event in (None, m["gatehouse"]["event"])]  # type: ignore[index]

    def wait_for(self, pending_id: str, event: str, count: int = 1,
                 seconds: float = 10) -> dict[str, object]:
        """The first message of `event` about the item, once `count` of them have arrived."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if len(found := self.about(pending_id, event)) >= count:
                return found[0]
            time.sleep(0.05)
        seen = [m["gatehouse"]["event"] for m in self.about(pending_id)]  # type: ignore[index]
        raise AssertionError(f"no {count} `{event}` message(s) for {pending_id}; saw {seen}")


async def _hook(request: web.Request) -> web.Response:
    message = await request.json()
    messages = request.app[MESSAGES]
    first = message not in messages
    messages.append(message)
    return web.Response(status=500 if request.app[FAIL_FIRST] and first else 200)


@contextmanager
def webhook_receiver(*, fail_first: bool = False) -> Iterator[WebhookReceiver]:
    """Serve until the block ends; `fail_first`: answer 500 to the first delivery of each
    message and 200 to any repeat of it."""
    ready, stop = threading.Event(), threading.Event()
    holder: dict[str, WebhookReceiver] = {}

    async def main() -> None:
        app = web.Application()
        app[MESSAGES], app[FAIL_FIRST] = [], fail_first
        app.router.add_post("/hooks/{tail:.*}", _hook)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server  # aiohttp keeps the asyncio server here
        assert server is not None
        port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        holder["receiver"] = WebhookReceiver(port, app[MESSAGES])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("the webhook receiver did not start")
    try:
        yield holder["receiver"]
    finally:
        stop.set()
        thread.join(10)
