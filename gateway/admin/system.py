"""Health, metrics, the OpenAPI document, and who the caller is."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import json_response
from gateway.admin.keys import SERVICES
from gateway.admin.openapi import OPENAPI


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response({"status": "ok", "policy": services.policy.current.snapshot_id,
                          "halts_active": len(services.halts.board.halts)})


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    services.metrics.halts_active.set(len(services.halts.board.halts))
    services.metrics.set_open(services.approvals.store.open_by_route(),
                              services.approvals.settings.groups)
    return web.Response(body=services.metrics.render(),
                        headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    return json_response(OPENAPI)


async def whoami(request: web.Request) -> web.Response:
    caller = principal(request)
    return json_response({"name": caller.name, "role": caller.role})
