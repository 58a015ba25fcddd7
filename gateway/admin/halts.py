"""The kill switch: set, list and lift halts (responders and admins)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.halts import HaltError
from gateway.tokens import Role


async def list_halts(request: web.Request) -> web.Response:
    principal(request)
    active_only = request.query.get("active", "true").lower() != "false"
    halts = request.app[SERVICES].halts.list(active_only=active_only)
    return json_response({"items": [h.to_json() for h in halts]})


async def get_halt(request: web.Request) -> web.Response:
    principal(request)
    halt = request.app[SERVICES].halts.get(request.match_info["id"])
    if halt is None:
        raise api_error(404, "not_found", f"no halt `{request.match_info['id']}`")
    return json_response(halt.to_json())


async def set_halt(request: web.Request) -> web.Response:
    actor = principal(request, Role.RESPONDER)
    body = await json_body(request)
    scope, target, reason = body.get("scope"), body.get("target"), body.get("reason")
    if not isinstance(scope, str) or not isinstance(target, str | None) or not isinstance(
            reason, str | None):
        raise api_error(422, "invalid_request",
                        "`scope`, `target` and `reason` must be strings, e.g. "
                        '{"scope": "agent", "target": "support-bot", "reason": "..."}')
    try:
        halt = await request.app[SERVICES].halts.set(scope, target, reason or "", actor.name)
    except HaltError as e:
        raise api_error(422, "invalid_request", str(e)) from e
    return json_response(halt.to_json(), status=201)


async def lift_halt(request: web.Request) -> web.Response:
    actor = principal(request, Role.RESPONDER)
    halt_id = request.match_info["id"]
    try:
        halt = await request.app[SERVICES].halts.lift(halt_id, actor.name)
    except HaltError as e:
        raise api_error(409, "conflict", str(e)) from e
    if halt is None:
        if request.app[SERVICES].halts.get(halt_id) is None:
            raise api_error(404, "not_found", f"no halt `{halt_id}`")
        raise api_error(409, "conflict", f"halt `{halt_id}` was already lifted")
    return json_response(halt.to_json())
