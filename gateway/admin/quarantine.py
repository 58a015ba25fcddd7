"""Quarantined responses: list, look (redacted view; the original for auditors), release,
discard."""

from __future__ import annotations

import base64

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import ApiError, api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.quarantine.service import QuarantineRefused, QuarantineService, StoredResponse
from gateway.quarantine.store import QuarantineItem, ReleaseAs, State
from gateway.tokens import Role

MAX_LIMIT = 1000


def _service(request: web.Request) -> QuarantineService:
    return request.app[SERVICES].quarantine


def _refused(e: QuarantineRefused) -> ApiError:
    return api_error(e.status, e.error_type, e.message)


def _text(body: bytes | None) -> str | None:
    try:
        return body.decode("utf-8") if body is not None else None
    except UnicodeDecodeError:
        return None


def _response(stored: StoredResponse) -> dict[str, object]:
    return {"status": stored.status, "headers": stored.headers,
            "body_base64": base64.b64encode(stored.body).decode()}


async def list_quarantine(request: web.Request) -> web.Response:
    principal(request)
    query = request.query
    try:
        state = State(query["state"]) if "state" in query else None
        limit = int(query.get("limit", "100"))
    except ValueError:
        raise api_error(400, "invalid_request", "state is one of held, released, delivered, "
                        f"discarded; limit is a number from 1 to {MAX_LIMIT}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise api_error(400, "invalid_request", f"limit is a number from 1 to {MAX_LIMIT}")
    items = _service(request).store.list(state=state, agent=query.get("agent"), limit=limit)
    return json_response({"items": [item.summary() for item in items]})


async def get_quarantine(request: web.Request) -> web.Response:
    """The item and its redacted view; `?original=true` adds the response as received, for
    auditors and admins, and that read is audited."""
    wants_original = request.query.get("original", "false").lower() == "true"
    reader = principal(request, Role.AUDITOR) if wants_original else principal(request)
    service = _service(request)
    try:
        item = service.get(request.match_info["id"])
        answer = {**item.summary(), "redacted": _text(service.redacted_body(item))}
        if wants_original:
            assert reader.role is not None
            answer["original"] = _response(
                await service.read_original(item, reader.name, reader.role))
    except QuarantineRefused as e:
        raise _refused(e) from None
    return json_response(answer)


async def _reason(request: web.Request) -> tuple[dict[str, object], str]:
    body = await json_body(request)
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip():
        raise api_error(422, "invalid_request", "give a `reason`: it goes on the audit trail")
    return body, reason.strip()


async def release(request: web.Request) -> web.Response:
    actor = principal(request, Role.REVIEWER, Role.RESPONDER)
    body, reason = await _reason(request)
    try:
        release_as = ReleaseAs(body.get("as"))
    except ValueError:
        raise api_error(422, "invalid_request",
                        '`as` is "redacted" or "original"') from None
    if release_as is ReleaseAs.ORIGINAL and actor.role is not Role.ADMIN:
        raise api_error(403, "forbidden", "only admins release the original (it hands the "
                        "personal data to the agent); release it as redacted")
    return await _decided(request, _service(request).release(
        request.match_info["id"], release_as, reason, actor.name))


async def discard(request: web.Request) -> web.Response:
    actor = principal(request, Role.REVIEWER, Role.RESPONDER)
    _, reason = await _reason(request)
    return await _decided(request, _service(request).discard(
        request.match_info["id"], reason, actor.name))


async def _decided(request: web.Request, decision) -> web.Response:  # type: ignore[no-untyped-def]
    try:
        item: QuarantineItem = await decision
    except QuarantineRefused as e:
        raise _refused(e) from None
    return json_response(item.summary())
