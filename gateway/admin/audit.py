"""Reading the audit trail, with filters (auditors, responders, admins)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_response
from gateway.admin.keys import SERVICES
from gateway.tokens import Role

MAX_LIMIT = 1000


async def list_records(request: web.Request) -> web.Response:
    principal(request, Role.AUDITOR, Role.RESPONDER)
    q = request.query
    try:
        since = datetime.fromisoformat(q["since"]) if "since" in q else None
        until = datetime.fromisoformat(q["until"]) if "until" in q else None
        after_seq = int(q.get("after_seq", "0"))
        limit = max(1, min(int(q.get("limit", "100")), MAX_LIMIT))
        records = request.app[SERVICES].audit.query(
            agent=q.get("agent"), action=q.get("action"), decision=q.get("decision"),
            event=q.get("event"), since=since, until=until, after_seq=after_seq, limit=limit)
    except ValueError as e:
        raise api_error(422, "invalid_request",
                        f"bad filter: {e}; use ISO 8601 times with a zone (e.g. "
                        "2026-01-01T00:00:00Z) and whole numbers") from e
    return json_response({"items": records})
