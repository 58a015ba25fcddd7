"""The running policy, its reload, and every snapshot that was ever active."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_response
from gateway.admin.keys import SERVICES
from gateway.tokens import Role


async def current(request: web.Request) -> web.Response:
    principal(request)
    holder = request.app[SERVICES].policy
    policy = holder.current
    return json_response({
        "snapshot_id": policy.snapshot_id, "revision": policy.revision, "name": policy.name,
        "source": policy.source, "active_since": holder.active_since,
        "warnings": list(policy.warnings)})


async def reload(request: web.Request) -> web.Response:
    actor = principal(request, Role.ADMIN)
    result = await request.app[SERVICES].policy.reload(actor.name)
    if not result.ok:
        raise api_error(422, "policy_invalid",
                        "the policy file does not validate; the running snapshot "
                        f"`{result.snapshot_id}` stays in place", details=result.error,
                        snapshot_id=result.snapshot_id)
    return json_response(result.to_json())


async def snapshots(request: web.Request) -> web.Response:
    principal(request)
    return json_response({"items": request.app[SERVICES].store.snapshots()})


async def snapshot(request: web.Request) -> web.Response:
    principal(request)
    found = request.app[SERVICES].store.snapshot(request.match_info["id"])
    if found is None:
        raise api_error(404, "not_found", f"no policy snapshot `{request.match_info['id']}`")
    return json_response(found)
