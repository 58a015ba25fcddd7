"""The admin API's error shape, served by a real aiohttp server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx
from aiohttp import web

from gateway.admin.errors import api_error, json_errors
from gateway.store import StoreError


async def _serve_and_get(paths: list[str]) -> list[httpx.Response]:
    async def lost(_: web.Request) -> web.Response:
        raise StoreError("cannot reach postgresql://gatehouse@db/gatehouse")

    async def refused(_: web.Request) -> web.Response:
        raise api_error(409, "conflict", "already decided")

    async def broken(_: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/lost", lost)
    app.router.add_get("/refused", refused)
    app.router.add_get("/broken", broken)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     trust_env=False) as client:
            return [await client.get(path) for path in paths]
    finally:
        await runner.cleanup()


def test_lost_state_is_503_our_refusals_keep_theirs_and_bugs_are_500() -> None:
    lost, refused, broken, missing = asyncio.run(
        _serve_and_get(["/lost", "/refused", "/broken", "/nowhere"]))
    assert lost.status_code == 503 and lost.json()["error"]["type"] == "gateway_error"
    assert "cannot reach postgresql" in lost.json()["error"]["message"]
    assert (refused.status_code, refused.json()["error"]["type"]) == (409, "conflict")
    assert (broken.status_code, broken.json()["error"]["type"]) == (500, "internal_error")
    assert "a bug" not in broken.text  # internals stay in the log
    assert (missing.status_code, missing.json()["error"]["type"]) == (404, "not_found")
