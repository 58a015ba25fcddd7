"""The admin API answers errors in the proxy's JSON shape: {"error": {"type", "message"}}."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web

from gateway.audit import AuditError
from gateway.store import StoreError

log = logging.getLogger("gatehouse.admin")


class ApiError(Exception):
    """A refusal the caller can act on; the middleware turns it into a JSON response."""

    def __init__(self, status: int, error_type: str, message: str, **fields: object) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"type": error_type, "message": message, **fields}}


def api_error(status: int, error_type: str, message: str, **fields: object) -> ApiError:
    return ApiError(status, error_type, message, **fields)


@web.middleware
async def json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Our refusals, aiohttp's own (404, 405, 413) and unexpected exceptions, all as JSON."""
    try:
        return await handler(request)
    except ApiError as e:
        return json_response(e.body, status=e.status)
    except web.HTTPException as e:
        error_type = e.reason.lower().replace(" ", "_")
        return json_response({"error": {"type": error_type, "message": e.reason}},
                             status=e.status)
    except (StoreError, AuditError) as e:  # the state is out of reach: try again later
        log.error("admin API: state unavailable on %s %s: %s", request.method, request.path, e)
        return json_response({"error": {"type": "gateway_error",
                                        "message": f"the gateway's state is unavailable: {e}; "
                                                   "check what took effect, then try again"}},
                             status=503)
    except Exception:
        log.exception("admin API error on %s %s", request.method, request.path)
        return json_response({"error": {"type": "internal_error",
                                        "message": "the gateway hit an internal error; "
                                                   "see its log"}}, status=500)


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
