"""The admin API answers errors in the proxy's JSON shape: {"error": {"type", "message"}}."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

log = logging.getLogger("gatehouse.admin")


_BY_STATUS: dict[int, type[web.HTTPException]] = {
    cls.status_code: cls for cls in (
        web.HTTPBadRequest, web.HTTPUnauthorized, web.HTTPForbidden, web.HTTPNotFound,
        web.HTTPMethodNotAllowed, web.HTTPConflict, web.HTTPUnprocessableEntity,
        web.HTTPInternalServerError, web.HTTPServiceUnavailable)
}


def api_error(status: int, error_type: str, message: str, **fields: object) -> web.HTTPException:
    body = orjson.dumps({"error": {"type": error_type, "message": message, **fields}})
    return _BY_STATUS[status](body=body, content_type="application/json")


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn aiohttp's own errors (404, 405) and unexpected exceptions into the JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.content_type == "application/json":
            raise
        raise api_error(e.status, e.reason.lower().replace(" ", "_"), e.reason) from e
    except Exception:
        log.exception("admin API error on %s %s", request.method, request.path)
        raise api_error(500, "internal_error",
                        "the gateway hit an internal error; see its log") from None


async def json_body(request: web.Request) -> dict[str, object]:
    try:
        body = await request.json(loads=orjson.loads)
    except (ValueError, UnicodeDecodeError) as e:
        raise api_error(400, "invalid_request", f"the body must be a JSON object: {e}") from e
    if not isinstance(body, dict):
        raise api_error(400, "invalid_request", "the body must be a JSON object")
    return body


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")
