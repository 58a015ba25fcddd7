"""Reviewers: the held calls, each with what a reviewer needs to judge it, and their votes."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.approvals.model import PendingItem, State
from gateway.approvals.review import APPROVE, DENY, VoteRefused, confirm_phrase
from gateway.content import UndecodableBody, decode_body
from gateway.tokens import Role

SHOWN_BODY_BYTES = 64 * 1024  # what a reviewer is shown of a body; the full body is evidence
PREVIOUS_DECISIONS = 10
MAX_LISTED = 1000


async def list_pending(request: web.Request) -> web.Response:
    """Filters: state, route, agent, action, and `assigned_to` (a name, or `me`: the caller)."""
    caller = principal(request, Role.REVIEWER)
    q = request.query
    state = q.get("state", "pending")
    try:
        states = None if state == "all" else [State(s) for s in state.split(",")]
    except ValueError as e:
        raise api_error(422, "invalid_request", f"{e}; use pending, approved, consumed, "
                                                "denied, expired, cancelled or all") from e
    try:
        limit = max(1, min(int(q.get("limit", "100")), MAX_LISTED))
    except ValueError as e:
        raise api_error(422, "invalid_request", f"`limit` must be a whole number: {e}") from e
    assignee = q.get("assigned_to")
    items = request.app[SERVICES].approvals.store.list(
        states=states, route=q.get("route"), agent=q.get("agent"), action=q.get("action"),
        assigned_to=caller.name if assignee == "me" else assignee, limit=limit)
    return json_response({"items": [item.to_json() for item in items]})


async def get_pending(request: web.Request) -> web.Response:
    """The full item; the first time a reviewer opens it starts their review clock."""
    reviewer = principal(request, Role.REVIEWER)
    services = request.app[SERVICES]
    item = _item(request)
    first_open = services.approvals.store.first_opened(item.id, reviewer.name) is None
    opened_at = services.approvals.store.opened(item.id, reviewer.name)
    if first_open:
        await services.audit.append("approval.opened", {
            "pending_id": item.id, "reviewer": reviewer.name, "at": opened_at,
            "request_hash": item.request_hash, "snapshot_id": item.snapshot_id})
    tier = services.policy.current.model.approvals.tiers.get(item.tier)
    previous = services.audit.query(agent=item.agent, action=item.action,
                                    event="call.decided", limit=1000)[-PREVIOUS_DECISIONS:]
    detail = {
        **item.to_json(),
        "request": _shown_request(item),
        "rollback": item.rollback,
        "requirements": tier.model_dump() if tier else None,
        "votes": [vote_json(v) for v in item.votes],
        "your_first_open": opened_at,
        "previous_decisions": [{"at": r["ts"], "decision": r.get("decision"),
                                "request_id": r.get("request_id"), "params": r.get("params")}
                               for r in previous],
    }
    if tier is not None and tier.confirm_phrase:
        detail["confirm_phrase"] = confirm_phrase(item)
    return json_response(detail)


async def approve(request: web.Request) -> web.Response:
    return await _vote(request, APPROVE)


async def deny(request: web.Request) -> web.Response:
    return await _vote(request, DENY)


async def _vote(request: web.Request, verdict: str) -> web.Response:
    reviewer = principal(request, Role.REVIEWER)
    body = await json_body(request)
    reason, confirm = body.get("reason", ""), body.get("confirm")
    if not isinstance(reason, str) or not isinstance(confirm, str | None):
        raise api_error(422, "invalid_request", "`reason` and `confirm` must be strings")
    try:
        item = await request.app[SERVICES].approvals.vote(
            request.match_info["id"], reviewer, verdict, reason, confirm)
    except VoteRefused as e:
        raise api_error(e.status, e.error_type, str(e), **e.fields) from e
    return json_response({**item.to_json(), "votes": [vote_json(v) for v in item.votes]})


def _item(request: web.Request) -> PendingItem:
    item = request.app[SERVICES].approvals.store.get(request.match_info["id"])
    if item is None:
        raise api_error(404, "not_found", f"no pending item `{request.match_info['id']}`")
    return item


def vote_json(vote: object) -> dict[str, object]:
    return {k: getattr(vote, k) for k in ("reviewer", "verdict", "reason", "at", "opened_at")}


def _shown_request(item: PendingItem) -> dict[str, object]:
    held = item.request
    headers = {k.lower(): v for k, v in held.headers}
    try:
        body = decode_body(held.body, headers.get("content-encoding"), SHOWN_BODY_BYTES * 16)
    except UndecodableBody as e:
        body, note = b"", f"the body could not be decoded: {e}"
    else:
        note = None
    text = body[:SHOWN_BODY_BYTES].decode("utf-8", "replace")
    return {
        "method": held.method,
        "url": _shown(held.to_call(item.agent, b"").url),
        "headers": [[_shown(k), _shown(v)] for k, v in held.headers],
        "body": text,
        "body_bytes": len(held.body),
        "body_truncated": len(body) > SHOWN_BODY_BYTES,
        "body_note": note,
    }


def _shown(text: str) -> str:
    """Text for a reviewer's eyes: bytes that are not UTF-8 become U+FFFD, visibly."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
