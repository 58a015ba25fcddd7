"""Agents' autonomy: the level, the promotion criteria, and the people's sign-offs."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.autonomy import AutonomyError
from gateway.tokens import Role


async def get_agent(request: web.Request) -> web.Response:
    principal(request)
    autonomy = request.app[SERVICES].autonomy
    agent = request.match_info["id"]
    if autonomy.autonomy is None:
        return json_response({"agent": agent, "autonomy": False, "level": None})
    level, since = autonomy.level(agent)
    history = request.app[SERVICES].audit.query(agent=agent, event="autonomy.level",
                                                limit=1000)
    return json_response({
        "agent": agent, "autonomy": True, "level": level, "since": since,
        "levels": sorted(autonomy.autonomy.levels), "criteria": autonomy.criteria(agent),
        "history": [{key: r.get(key) for key in ("ts", "level", "previous", "kind", "actor",
                                                 "reason")} for r in history]})


async def _change(request: web.Request, promote: bool) -> web.Response:
    actor = principal(request, Role.RESPONDER)
    body = await json_body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise api_error(422, "invalid_request", "a level change needs a `reason`")
    autonomy = request.app[SERVICES].autonomy
    agent = request.match_info["id"]
    try:
        if promote:
            level: int | None = await autonomy.promote(agent, actor.name, reason)
        else:
            level = await autonomy.demote(agent, actor.name, reason)
    except AutonomyError as e:
        raise api_error(409, "conflict", str(e)) from e
    if level is None:
        raise api_error(409, "conflict", f"`{agent}` is at the lowest level already")
    return json_response({"agent": agent, "level": level})


async def promote(request: web.Request) -> web.Response:
    return await _change(request, promote=True)


async def demote(request: web.Request) -> web.Response:
    return await _change(request, promote=False)
