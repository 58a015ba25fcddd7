"""The kill switch: set, list and lift halts (responders and admins)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.autonomy import AutonomyError
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
    mode = body.get("mode", "halt")
    if not isinstance(scope, str) or not isinstance(target, str | None) or not isinstance(
            reason, str | None) or not isinstance(mode, str):
        raise api_error(422, "invalid_request",
                        "`scope`, `target`, `reason` and `mode` must be strings, e.g. "
                        '{"scope": "agent", "target": "support-bot", "reason": "..."}')
    try:
        halt = await request.app[SERVICES].halts.set(scope, target, reason or "", actor.name,
                                                     mode=mode)
    except HaltError as e:
        raise api_error(422, "invalid_request", str(e)) from e
    return json_response(halt.to_json(), status=201)


async def lift_halt(request: web.Request) -> web.Response:
    actor = principal(request, Role.RESPONDER)
    halt_id = request.match_info["id"]
    resume_as = request.query.get("as", "full")
    if resume_as not in ("full", "shadow", "level"):
        raise api_error(400, "invalid_request",
                        "`as` is `full` (default), `shadow`, or `level` with `level=N`")
    if resume_as == "shadow":
        return await _resume_in_shadow(request, halt_id, actor.name)
    if resume_as == "level":
        return await _resume_at_level(request, halt_id, actor.name)
    try:
        halt = await request.app[SERVICES].halts.lift(halt_id, actor.name)
    except HaltError as e:
        raise api_error(409, "conflict", str(e)) from e
    if halt is None:
        if request.app[SERVICES].halts.get(halt_id) is None:
            raise api_error(404, "not_found", f"no halt `{halt_id}`")
        raise api_error(409, "conflict", f"halt `{halt_id}` was already lifted")
    return json_response(halt.to_json())


async def _resume_in_shadow(request: web.Request, halt_id: str, actor: str) -> web.Response:
    halts = request.app[SERVICES].halts
    try:
        resumed = await halts.resume_in_shadow(halt_id, actor)
    except HaltError as e:
        raise api_error(409, "conflict", str(e)) from e
    if resumed is None:
        if halts.get(halt_id) is None:
            raise api_error(404, "not_found", f"no halt `{halt_id}`")
        raise api_error(409, "conflict", f"halt `{halt_id}` was already lifted")
    lifted, shadow = resumed
    return json_response({**lifted.to_json(), "shadow": shadow.to_json()})


async def _resume_at_level(request: web.Request, halt_id: str, actor: str) -> web.Response:
    """The restart gate for an agent: its level is set before its halt is lifted."""
    services = request.app[SERVICES]
    halt = services.halts.get(halt_id)
    if halt is None:
        raise api_error(404, "not_found", f"no halt `{halt_id}`")
    if halt.scope != "agent":
        raise api_error(409, "conflict", "only an agent's halt resumes at a level")
    try:
        level = int(request.query["level"])
        await services.autonomy.set_level(halt.target, level, actor,
                                          f"resumed from {halt_id} at level {level}")
    except AutonomyError as e:  # (a ValueError too: caught first)
        raise api_error(409, "conflict", str(e)) from e
    except (KeyError, ValueError) as e:
        raise api_error(400, "invalid_request", "give the level: ?as=level&level=N") from e
    lifted = await services.halts.lift(halt_id, actor)
    if lifted is None:
        raise api_error(409, "conflict", f"halt `{halt_id}` was already lifted")
    return json_response({**lifted.to_json(), "level": level})
