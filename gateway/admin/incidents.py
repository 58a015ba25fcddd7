"""Incidents: open one (responders); list them, read one, its chain and its report
(responders, auditors)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_body, json_response
from gateway.admin.keys import SERVICES
from gateway.incidents.report import report_json, report_markdown
from gateway.incidents.service import IncidentError
from gateway.incidents.store import Incident
from gateway.tokens import Role

MAX_LIMIT = 1000
EXAMPLE = ('{"title": "misleading billing email sent", "severity": "SEV-2", '
           '"request_id": "req_...", "contain": true}')


def body_time(body: dict[str, object], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise api_error(422, "invalid_request",
                        f"`{key}` is a time with its zone, like 2026-06-25T09:00:00Z")
    return when


async def open_incident(request: web.Request) -> web.Response:
    actor = principal(request, Role.RESPONDER)
    body = await json_body(request)
    title, severity = body.get("title"), body.get("severity")
    request_id, agent, contain = body.get("request_id"), body.get("agent"), body.get("contain")
    if not isinstance(title, str) or not isinstance(severity, str) or not isinstance(
            request_id, str | None) or not isinstance(agent, str | None) or not isinstance(
            contain, bool | None):
        raise api_error(422, "invalid_request", "`title` and `severity` are strings, "
                        "`request_id` and `agent` strings if given, `contain` true or false; "
                        f"e.g. {EXAMPLE}")
    try:
        incident = await request.app[SERVICES].incidents.open(
            title=title, severity=severity, actor=actor.name, request_id=request_id,
            since=body_time(body, "since"), until=body_time(body, "until"), agent=agent,
            contain=bool(contain))
    except IncidentError as e:
        raise api_error(e.status, "not_found" if e.status == 404 else "invalid_request",
                        str(e)) from e
    return json_response(incident.to_json(), status=201)


async def list_incidents(request: web.Request) -> web.Response:
    principal(request, Role.RESPONDER, Role.AUDITOR)
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise api_error(400, "invalid_request", f"limit is a number from 1 to {MAX_LIMIT}")
    items = request.app[SERVICES].incidents.store.list(limit=limit)
    return json_response({"items": [incident.to_json() for incident in items]})


def _incident(request: web.Request) -> Incident:
    principal(request, Role.RESPONDER, Role.AUDITOR)
    incident = request.app[SERVICES].incidents.store.get(request.match_info["id"])
    if incident is None:
        raise api_error(404, "not_found", f"no incident `{request.match_info['id']}`")
    return incident


async def get_incident(request: web.Request) -> web.Response:
    return json_response(_incident(request).to_json())


async def _chain(request: web.Request) -> dict[str, Any]:
    """Built on a thread: it reads the audit trail, which may be long."""
    incident = _incident(request)
    chains = request.app[SERVICES].incidents.chains
    return await asyncio.get_running_loop().run_in_executor(None, chains.build, incident)


async def get_chain(request: web.Request) -> web.Response:
    return json_response(await _chain(request))


async def get_report(request: web.Request) -> web.Response:
    wanted = request.query.get("format", "md")
    if wanted not in ("md", "json"):
        raise api_error(400, "invalid_request", "format is `md` or `json`")
    chain = await _chain(request)
    if wanted == "json":
        return json_response(report_json(chain))
    return web.Response(text=report_markdown(chain), content_type="text/markdown")
