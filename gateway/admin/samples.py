"""The post-execution review queue: calls drawn from those that went out without a reviewer."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.sampling import VERDICTS, review_queue
from gateway.tokens import Role


async def list_samples(request: web.Request) -> web.Response:
    principal(request, Role.REVIEWER, Role.AUDITOR)
    state = request.query.get("state", "open")
    if state not in ("open", "all"):
        raise api_error(400, "invalid_request", "state is `open` (default) or `all`")
    items = review_queue(request.app[SERVICES].audit.query, open_only=state == "open")
    return json_response({"items": items})


async def record_verdict(request: web.Request) -> web.Response:
    reviewer = principal(request, Role.REVIEWER, Role.AUDITOR)
    body = await json_body(request)
    verdict, note = body.get("verdict"), body.get("note", "")
    if verdict not in VERDICTS or not isinstance(note, str):
        raise api_error(422, "invalid_request", "`verdict` is `fine` or `problem`, `note` a "
                        'string; e.g. {"verdict": "problem", "note": "wrong customer"}')
    services = request.app[SERVICES]
    request_id = request.match_info["request_id"]
    found = [item for item in review_queue(services.audit.query, open_only=False)
             if item["request_id"] == request_id]
    if not found:
        raise api_error(404, "not_found", f"call `{request_id}` was not drawn for review")
    if found[0]["verdict"] is not None:
        raise api_error(409, "conflict", f"call `{request_id}` was reviewed already "
                        f"({found[0]['verdict']}, by {found[0]['reviewer']})")
    await services.audit.append("sample.verdict", {
        "request_id": request_id, "agent": found[0]["agent"], "action": found[0]["action"],
        "verdict": verdict, "note": note, "reviewer": reviewer.name})
    return json_response({**found[0], "verdict": verdict, "note": note,
                          "reviewer": reviewer.name})
