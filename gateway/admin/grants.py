"""Standing grants: reviewers create them, reviewers and responders revoke them."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.approvals.grants import GrantRequest
from gateway.clock import utc_now_iso
from gateway.tokens import Role


async def create_grant(request: web.Request) -> web.Response:
    """Admins only: a grant waives the per-call review of a whole class of calls, which
    routing to reviewer groups cannot check in advance."""
    reviewer = principal(request, Role.ADMIN)
    body = await json_body(request)
    try:
        wanted = GrantRequest.model_validate(body)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'body'}: {err['msg']}"
                             for err in e.errors())
        raise api_error(422, "invalid_request", problems) from e
    if wanted.agent == reviewer.name:
        raise api_error(403, "forbidden", "no one grants calls made under their own identity")
    grant = await request.app[SERVICES].grants.create(wanted, reviewer.name)
    return json_response(grant.to_json(), status=201)


async def list_grants(request: web.Request) -> web.Response:
    principal(request)
    active = request.query.get("active", "true").lower() != "false"
    grants = request.app[SERVICES].grants.store.list(active_at=utc_now_iso() if active else None)
    return json_response({"items": [g.to_json() for g in grants]})


async def revoke_grant(request: web.Request) -> web.Response:
    actor = principal(request, Role.REVIEWER, Role.RESPONDER)
    grant_id = request.match_info["id"]
    grant = await request.app[SERVICES].grants.revoke(grant_id, actor.name)
    if grant is None:
        if request.app[SERVICES].grants.store.get(grant_id) is None:
            raise api_error(404, "not_found", f"no grant `{grant_id}`")
        raise api_error(409, "conflict", f"grant `{grant_id}` was already revoked")
    return json_response(grant.to_json())
