"""Legal holds: place, list and release them (auditors and admins; responders may list)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.incidents import body_time
from gateway.admin.keys import SERVICES
from gateway.clock import utc_now
from gateway.retention import HoldError, holds_on_record, new_hold
from gateway.tokens import Role


async def place_hold(request: web.Request) -> web.Response:
    actor = principal(request, Role.AUDITOR)
    body = await json_body(request)
    reason, agent, incident = body.get("reason"), body.get("agent"), body.get("incident")
    if not all(isinstance(v, str | None) for v in (reason, agent, incident)):
        raise api_error(422, "invalid_request", "`reason`, `agent` and `incident` are strings; "
                        'e.g. {"incident": "INC-0007", "reason": "claim 2026-114"}')
    services = request.app[SERVICES]
    if incident is not None and services.incidents.store.get(incident) is None:
        raise api_error(422, "invalid_request", f"no incident `{incident}`")
    try:
        hold = new_hold(reason=reason or "", actor=actor.name, now=utc_now(), agent=agent,
                        incident=incident, since=body_time(body, "since"),
                        until=body_time(body, "until"))
    except HoldError as e:
        raise api_error(422, "invalid_request", str(e)) from e
    fields = hold.to_json()
    del fields["active"]
    await services.audit.append("hold.placed", fields)
    return json_response(hold.to_json(), status=201)


async def list_holds(request: web.Request) -> web.Response:
    principal(request, Role.AUDITOR, Role.RESPONDER)
    holds = holds_on_record(request.app[SERVICES].audit.query)
    return json_response({"items": [h.to_json() for h in holds]})


async def release_hold(request: web.Request) -> web.Response:
    actor = principal(request, Role.AUDITOR)
    services = request.app[SERVICES]
    hold_id = request.match_info["id"]
    hold = next((h for h in holds_on_record(services.audit.query) if h.id == hold_id), None)
    if hold is None:
        raise api_error(404, "not_found", f"no legal hold `{hold_id}`")
    if hold.released_at is not None:
        raise api_error(409, "conflict", f"legal hold `{hold_id}` was already released")
    entry = await services.audit.append("hold.released", {"id": hold_id, "actor": actor.name})
    return json_response({**hold.to_json(), "active": False, "released_at": entry.ts,
                          "released_by": actor.name})
