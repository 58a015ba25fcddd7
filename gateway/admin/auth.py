"""Bearer tokens with roles. Agent tokens are refused outright: an agent never reviews itself."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.errors import api_error
from gateway.store import StateStore
from gateway.tokens import Principal, Role

STORE = web.AppKey("store", StateStore)


def principal(request: web.Request, *roles: Role) -> Principal:
    """The caller, who must hold one of `roles` (admin always may); raises a JSON 401/403."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise api_error(401, "unauthorized",
                        "send `Authorization: Bearer TOKEN` (create one with "
                        "`gatehouse token create --reviewer NAME --role ROLE`)")
    found = request.app[STORE].find_token(token.strip())
    if found is None:
        raise api_error(401, "unauthorized", "the bearer token is not valid")
    if found.kind != "person":
        raise api_error(403, "forbidden", "agent credentials cannot use the admin API")
    if roles and not found.may(*roles):
        allowed = ", ".join(sorted({r.value for r in roles} | {"admin"}))
        raise api_error(403, "forbidden",
                        f"role `{found.role}` may not do this; it needs one of: {allowed}")
    return found
