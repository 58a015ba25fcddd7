"""Evidence files, for auditors: each read is audited before it is served (chain of custody)."""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import principal
from gateway.admin.errors import api_error, json_response
from gateway.admin.keys import SERVICES
from gateway.evidence import EvidenceError, open_envelope
from gateway.tokens import Role


async def get_evidence(request: web.Request) -> web.Response:
    reader = principal(request, Role.AUDITOR)
    services = request.app[SERVICES]
    digest = request.match_info["digest"]
    try:
        data = services.quarantine.evidence.get(digest)
    except EvidenceError as e:
        status = 404 if "missing" in str(e) or "not a SHA-256" in str(e) else 409
        raise api_error(status, "not_found" if status == 404 else "conflict", str(e)) from e
    await services.audit.append("evidence.read", {
        "digest": digest, "reader": reader.name,
        "role": reader.role.value if reader.role else None})
    opened = open_envelope(data)
    if opened is None:  # a body kept whole (a quarantined response, a flagged page)
        return web.Response(body=data, content_type="application/octet-stream")
    return json_response({"digest": digest, **opened})
